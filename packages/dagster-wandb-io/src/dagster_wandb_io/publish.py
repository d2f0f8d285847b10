"""The write path: serialize an output, commit it to the shared cache, log it to W&B.

A serialized payload is written once, into a staged cache entry; wandb uploads it (or `wandb
sync` does later) from a hard link in the W&B staging area, so eviction cannot take it away.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pickle
import platform
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import serialization, signing
from .backends import Backends, Log, StoreSettings, indexed_version
from .cache import CacheEntry, EntryManifest, FileRecord, StagedEntry, files_seal
from .config import WriteConfig
from .errors import CacheCorruptionError, ConfigurationError, OfflineIndexError, SignatureError
from .fsutil import atomic_write_json, link_or_copy, remove_tree
from .index import published_by
from .keys import ALLOW_UNSIGNED_ENV, PRIVATE_KEY_ENV, Signer
from .naming import run_alias
from .runs import RunInfo, RunSpec, open_run, run_info, scoped_env
from .sources import check_directory, check_readable
from .version import __version__
from .wandb_client import ArtifactVersion, app_url

INTEGRATION_NAME = "dagster_wandb_io"


@dataclass
class WriteResult(ArtifactVersion):
    """The version a write published, and how."""

    run: RunInfo
    offline: bool
    wandb_metadata: dict[str, Any] = field(default_factory=dict)
    cache_path: str = ""
    # This run had already published the name: this is that publication, and nothing new was.
    reused_earlier: bool = False


@dataclass(frozen=True)
class _Write:
    """One call of `write`: what each of its steps needs."""

    backends: Backends
    name: str
    config: WriteConfig
    run: RunSpec
    log: Log
    signer: Signer | None
    # wandb uploads from here (or `wandb sync` does later), so it outlives the entry's hold.
    staging_dir: Path


def published_in_run(backends: Backends, name: str, run: RunSpec) -> WriteResult | None:
    """The version of ``name`` this Dagster run already published, if any.

    A step can execute twice in one run: Celery redelivers a step whose worker died before
    the step's success was recorded, and a retry policy re-runs a step that failed after
    some of its outputs were written. The IO manager keeps the first publication so that
    every reader (downstream steps, other teams) sees one content per run and name.
    """
    s = backends.settings
    if backends.offline:
        found = _indexed_publication(backends, name, run)
    else:
        found = _remote_publication(backends, name, run)
    if found is None:
        return None
    version, metadata = found
    info = RunInfo(
        id=run.run_id,
        name=run.name,
        path=f"{s.entity}/{s.project}/{run.run_id}",
        url=f"{app_url(s.host)}/{s.entity}/{s.project}/runs/{run.run_id}",
    )
    entry = backends.cache.entry(s.entity, s.project, name, version.digest)
    return _result(backends, version, info, metadata, entry, reused_earlier=True)


def _indexed_publication(
    backends: Backends, name: str, run: RunSpec
) -> tuple[ArtifactVersion, dict[str, Any]] | None:
    s = backends.settings
    try:
        indexed = backends.index.resolve(
            s.entity,
            s.project,
            name,
            run_alias(run.dagster_run_id),
            trust=backends.trust,
            allow_unsigned=s.allow_unsigned,
        )
    except (OfflineIndexError, SignatureError):
        return None  # an untrusted index is set aside by the write that follows
    if indexed is None or not published_by(indexed.info, run.dagster_run_id):
        return None
    version = indexed_version(
        s, name, indexed, url=_artifact_url(s, indexed.type, name, indexed.version)
    )
    return version, {}


def _remote_publication(
    backends: Backends, name: str, run: RunSpec
) -> tuple[ArtifactVersion, dict[str, Any]] | None:
    s = backends.settings
    remote = backends.client.resolve(s.entity, s.project, name, run_alias(run.dagster_run_id))
    if remote is None or remote.metadata.get("source_dagster_run_id") != run.dagster_run_id:
        return None
    return remote, remote.metadata


def _result(
    backends: Backends,
    version: ArtifactVersion,
    run: RunInfo,
    metadata: dict[str, Any],
    entry: CacheEntry,
    *,
    reused_earlier: bool = False,
) -> WriteResult:
    """The one place a WriteResult is built: `version`, plus how it was published."""
    shared = {f.name: getattr(version, f.name) for f in dataclasses.fields(ArtifactVersion)}
    shared["aliases"] = list(version.aliases)
    return WriteResult(
        **shared,
        run=run,
        offline=backends.offline,
        wandb_metadata=dict(metadata),
        cache_path=str(entry.path),
        reused_earlier=reused_earlier,
    )


def write(
    backends: Backends,
    obj: Any,
    *,
    name: str,
    config: WriteConfig,
    run: RunSpec,
    log: Log,
    extra_metadata: dict[str, Any] | None,
    once_per_run: bool = False,
) -> WriteResult:
    """Publish `obj` as a new version of `name` (or an existing one with the same content).

    `once_per_run`: if this Dagster run already published `name`, publish nothing and return
    that publication. Offline, the check and the publication are one index update, so two
    executions of one step (a redelivered task, on any host) publish once."""
    # Before anything is written: who signs, and whether this team owns the entity.
    signer = backends.signer(required=True)
    layout = backends.cache.layout
    base_metadata = _base_metadata(run, extra_metadata)
    staging_dir = layout.wandb_staging_dir / uuid.uuid4().hex
    job = _Write(backends, name, config, run, log, signer, staging_dir)
    # wandb stages artifact files under WANDB_DATA_DIR; offline runs are synced later from
    # there, so it must be on the shared volume rather than a container's /tmp or $HOME.
    with (
        scoped_env({"WANDB_DATA_DIR": str(layout.wandb_data_dir)}),
        backends.cache.stage() as staged,
    ):
        artifact, manifest = _stage(job, obj, staged, base_metadata)
        entry = backends.cache.commit_held(staged, manifest, backends.settings.ttl_minutes)
        aliases = _dedupe([*config.aliases, run_alias(run.dagster_run_id), "latest"])
        try:
            if backends.offline:
                return _publish_offline(job, artifact, manifest, entry, aliases, once_per_run)
            return _publish_online(job, artifact, manifest, entry, aliases)
        except BaseException:
            # A failed publication (the index or W&B refused it) must not keep the entry's
            # shared lock: this process's next commit of the same content would wait on it.
            backends.cache.holds.release(entry)
            raise


def _base_metadata(run: RunSpec, extra_metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "source_integration": INTEGRATION_NAME,
        "source_integration_version": __version__,
        "source_dagster_run_id": run.dagster_run_id,
        "source_created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "source_python_version": platform.python_version(),
        **(extra_metadata or {}),
    }


def _stage(
    job: _Write, obj: Any, staged: StagedEntry, base_metadata: dict[str, Any]
) -> tuple[Any, EntryManifest]:
    """The draft wandb.Artifact of `obj`, and its cache manifest with every file in `staged`."""
    backends, s = job.backends, job.backends.settings
    artifact, payload = _draft(job, obj, staged.files_dir, base_metadata)
    _add_extras(artifact, job.config, offline=backends.offline)
    _relocate_local_files(artifact, job.staging_dir, backends.cache.layout.root)
    digest = artifact.digest
    # With a store of record, this host's copy is a cache like any other (evictable).
    origin = "stored" if backends.offline and backends.objects is not None else s.mode
    manifest = _manifest_for(artifact, staged, payload, s, origin=origin)
    if manifest.digest != digest:
        raise CacheCorruptionError(
            f"Internal error: computed digest {manifest.digest} != W&B digest {digest}."
        )
    return artifact, manifest


def _draft(
    job: _Write, obj: Any, files_dir: Path, base_metadata: dict[str, Any]
) -> tuple[Any, serialization.WrittenPayload | None]:
    """A wandb.Artifact holding `obj`: adopted as is, a W&B object, or a serialized payload."""
    import wandb
    from wandb.data_types import WBValue

    config = job.config
    if isinstance(obj, wandb.Artifact):
        return _adopt_artifact(obj, job.name, config, base_metadata, job.log), None
    artifact = wandb.Artifact(
        name=job.name,
        type=config.type or "artifact",
        description=config.description,
        metadata=base_metadata,
    )
    if isinstance(obj, WBValue):
        if config.serialization_module is not None:
            job.log(
                "`serialization_module` is ignored: the output is a W&B object"
                f" ({type(obj).__name__}), stored as JSON by W&B."
            )
        artifact.add(obj, type(obj).__name__)
        return artifact, None
    payload = _serialize(job, obj, files_dir)
    artifact.metadata = {**artifact.metadata, **_payload_metadata(payload)}
    _add_payload_files(artifact, payload, files_dir, job.staging_dir)
    return artifact, payload


def _publish_offline(
    job: _Write,
    artifact: Any,
    manifest: EntryManifest,
    entry: CacheEntry,
    aliases: list[str],
    once_per_run: bool,
) -> WriteResult:
    """Index the committed entry, then log it to an offline W&B run for `wandb sync`."""
    backends, s, run = job.backends, job.backends.settings, job.run
    if backends.objects is not None:
        # Stored before the index names it: a reader on any host can then fetch it.
        backends.objects.upload(entry, manifest)
    indexed = backends.index.record(
        s.entity,
        s.project,
        job.name,
        digest=manifest.digest,
        type=artifact.type,
        size=manifest.size,
        aliases=aliases,
        info={
            "dagster_run_id": run.dagster_run_id,
            "wandb_run_id": run.run_id,
            # Signed with the index: what readers check the cached files' hashes against.
            "files_seal": files_seal(manifest.files),
        },
        signer=job.signer,
        trust=backends.trust,
        log=job.log,
        claim_run=run.dagster_run_id if once_per_run else None,
    )
    if indexed.claimed_earlier:
        return _earlier_publication(job, entry)
    # Logged once the index holds the publication, so `wandb sync` uploads what the
    # platform's readers see.
    with backends.run_lock(run), open_run(backends.cache.layout, run, mode="offline") as wandb_run:
        wandb_run.log_artifact(artifact, aliases=aliases)
        info = run_info(wandb_run, run, app_url=app_url(s.host))
        offline_dir = Path(wandb_run.dir).parent
    atomic_write_json(job.staging_dir / ".offline_run.json", {"run_dir": str(offline_dir)})
    url = _artifact_url(s, artifact.type, job.name, indexed.version)
    version = _written(job, artifact, manifest, aliases, indexed.version, None, url)
    backends.cache.holds.release(entry)
    return _result(backends, version, info, artifact.metadata, entry)


def _earlier_publication(job: _Write, entry: CacheEntry) -> WriteResult:
    """What this run published before, when the index says it had (and nothing new was)."""
    job.backends.cache.holds.release(entry)
    remove_tree(job.staging_dir)
    earlier = published_in_run(job.backends, job.name, job.run)
    if earlier is None:  # pragma: no cover - the index just named it
        raise OfflineIndexError(f"{job.name}: the run's earlier version vanished.")
    return earlier


def _publish_online(
    job: _Write, artifact: Any, manifest: EntryManifest, entry: CacheEntry, aliases: list[str]
) -> WriteResult:
    backends = job.backends
    with backends.run_lock(job.run):
        logged = backends.client.log_artifact(job.run, artifact, aliases)
    remove_tree(job.staging_dir)
    version = _written(job, artifact, manifest, aliases, logged.version, logged.id, logged.url)
    backends.cache.holds.release(entry)
    return _result(backends, version, logged.run, artifact.metadata, entry)


def _written(
    job: _Write,
    artifact: Any,
    manifest: EntryManifest,
    aliases: list[str],
    version: str,
    artifact_id: str | None,
    url: str | None,
) -> ArtifactVersion:
    """The version this write logged, as W&B (or the offline index) numbered it."""
    s = job.backends.settings
    return ArtifactVersion(
        entity=s.entity,
        project=s.project,
        name=job.name,
        version=version,
        digest=manifest.digest,
        type=artifact.type,
        id=artifact_id,
        size=manifest.size,
        url=url,
        aliases=aliases,
    )


def _serialize(job: _Write, obj: Any, dest: Path) -> serialization.WrittenPayload:
    s = job.backends.settings
    binding = None
    if job.signer is None:
        job.log(
            f"{PRIVATE_KEY_ENV} is not set: writing an UNSIGNED pickle because this deployment"
            f" sets {ALLOW_UNSIGNED_ENV}. Readers must allow unsigned pickles too."
        )
    else:
        binding = signing.Binding(
            entity=s.entity,
            project=s.project,
            name=job.name,
            team=job.signer.team,
        )
    return serialization.dump(
        obj,
        job.config.serialization_module or "pickle",
        job.config.serialization_parameters,
        dest,
        signer=job.signer,
        binding=binding,
        log=job.log,
    )


def _add_payload_files(
    artifact: Any,
    payload: serialization.WrittenPayload,
    files_dir: Path,
    staging_dir: Path,
) -> None:
    """Add the payload (and signature) with the MD5 computed while writing it.

    `Artifact.add_file` would hash the file again by mmap-ing all of it (a second full
    read, and the whole payload counted in RSS); the entry it builds is the same.
    """
    from wandb.sdk.artifacts.artifact_manifest_entry import ArtifactManifestEntry

    files = [(payload.filename, payload.md5_b64, payload.size)]
    if payload.signature_filename is not None:
        assert payload.signature_md5_b64 is not None and payload.signature_size is not None
        files.append(
            (payload.signature_filename, payload.signature_md5_b64, payload.signature_size)
        )
    for fname, md5, size in files:
        # A hard link on the same volume: wandb uploads (or `wandb sync` later uploads)
        # from here, independent of cache eviction, without writing the bytes twice.
        link_or_copy(files_dir / fname, staging_dir / fname)
        artifact.manifest.add_entry(
            ArtifactManifestEntry(
                path=fname,
                digest=md5,
                size=size,
                local_path=str(staging_dir / fname),
                skip_cache=True,
            )
        )


def _adopt_artifact(
    obj: Any,
    name: str,
    config: WriteConfig,
    base_metadata: dict[str, Any],
    log: Log,
) -> Any:
    import wandb

    if config.name is not None or config.type is not None:
        raise ConfigurationError(
            "`name` and `type` in `wandb_artifact_configuration` only apply when the"
            " output is not already a wandb.Artifact; set them on the Artifact instead."
        )
    if config.serialization_module is not None:
        log("`serialization_module` is ignored: the output is already a wandb.Artifact.")
    if obj.description is not None and config.description is not None:
        raise ConfigurationError(
            "The Artifact already has a description and `wandb_artifact_configuration`"
            " sets another. Set it in one place only."
        )
    artifact = obj
    if obj.name != name:
        log(
            f"The Artifact is named {obj.name!r} but this output maps to {name!r}; it is"
            f" logged as {name!r}. Use the asset name (plus partition) for the Artifact to"
            " avoid this."
        )
        # wandb.Artifact names are read-only; copy the manifest into a renamed draft.
        artifact = wandb.Artifact(
            name, type=obj.type, description=obj.description, metadata=obj.metadata
        )
        for entry in obj.manifest.entries.values():
            artifact.manifest.add_entry(entry)
    artifact.metadata = {**artifact.metadata, **base_metadata}
    if config.description is not None:
        artifact.description = config.description
    return artifact


def _add_extras(artifact: Any, config: WriteConfig, *, offline: bool) -> None:
    for kwargs in config.add_files:
        check_readable(kwargs.get("local_path", ""), what="The `add_files` file")
        artifact.add_file(**kwargs)
    for kwargs in config.add_dirs:
        check_directory(kwargs.get("local_path", ""))
        artifact.add_dir(**kwargs)
    for kwargs in config.add_references:
        uri = urlparse(str(kwargs.get("uri", "")))
        if uri.scheme == "file":
            check_readable(uri.path, what="The `add_references` file")
        if offline and kwargs.get("checksum") is not True:
            _add_unchecked_reference(artifact, **kwargs)
        else:
            artifact.add_reference(**kwargs)


def _add_unchecked_reference(
    artifact: Any,
    uri: str,
    name: str | None = None,
    checksum: bool = False,
    max_objects: int | None = None,
) -> None:
    # Offline there is no network to checksum a reference (and s3/gs would need their
    # SDKs), so record it as W&B does with checksum=False: the URI is the digest.
    del checksum, max_objects
    from wandb.sdk.artifacts.artifact_manifest_entry import ArtifactManifestEntry

    parsed = urlparse(uri)
    if not parsed.scheme:
        raise ConfigurationError(
            f"Reference {uri!r} in `add_references` is not a URI. Use file:// for local"
            " files, or `add_files` to store them in the artifact."
        )
    path = name or (os.path.basename(parsed.path.rstrip("/")) or parsed.netloc)
    artifact.manifest.add_entry(ArtifactManifestEntry(path=path, ref=uri, digest=uri))


def _relocate_local_files(artifact: Any, staging_dir: Path, shared_root: Path) -> None:
    """Make every file of the artifact live on the shared volume until it is uploaded."""
    root = shared_root.resolve()
    for entry in artifact.manifest.entries.values():
        if entry.ref is not None or not entry.local_path:
            continue
        src = Path(entry.local_path).resolve()
        if src.is_relative_to(root):
            continue
        dst = staging_dir / "relocated" / uuid.uuid4().hex
        link_or_copy(src, dst)
        entry.local_path = str(dst)


def _manifest_for(
    artifact: Any,
    staged: StagedEntry,
    payload: serialization.WrittenPayload | None,
    settings: StoreSettings,
    *,
    origin: str,
) -> EntryManifest:
    """The cache entry of `artifact`, with every file not yet staged linked into `staged`."""
    known = {payload.filename: payload.tree_xxh128} if payload else {}
    files: dict[str, FileRecord] = {}
    refs: dict[str, dict[str, Any]] = {}
    for path, entry in artifact.manifest.entries.items():
        if entry.ref is not None:
            refs[path] = {"ref": entry.ref, "digest": str(entry.digest), "size": entry.size}
            continue
        files[path] = staged.add_file(
            path, entry.local_path, str(entry.digest), int(entry.size or 0), known.get(path)
        )
    return EntryManifest(
        digest=artifact.digest,
        entity=settings.entity,
        project=settings.project,
        name=artifact.name.split(":")[0],
        type=artifact.type,
        files=files,
        references=refs,
        description=artifact.description,
        metadata=dict(artifact.metadata),
        origin=origin,
    )


def _artifact_url(settings: StoreSettings, type_: str, name: str, version: str) -> str:
    """Where an offline artifact will be once `wandb sync` uploads it."""
    return (
        f"{app_url(settings.host)}/{settings.entity}/{settings.project}/artifacts/{type_}"
        f"/{name}/{version}"
    )


def _payload_metadata(payload: serialization.WrittenPayload) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source_serialization_module": payload.module,
        "source_pickle_protocol_used": payload.protocol,
        "source_dagster_wandb_io_signed": payload.signature_filename is not None,
        **payload.metadata,
    }
    if payload.module != "pickle" and payload.module_version is not None:
        meta[f"source_{payload.module}_version_used"] = payload.module_version
    if payload.signature_filename is not None:
        meta["source_signature_scheme"] = signing.SCHEME
    meta["source_pickle_default_protocol"] = pickle.DEFAULT_PROTOCOL
    return meta


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
