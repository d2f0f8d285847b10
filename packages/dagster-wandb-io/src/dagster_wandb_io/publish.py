"""The write path: serialize an output, commit it to the shared cache, log it to W&B.

A serialized payload is written once, into a staged cache entry; wandb uploads it (or `wandb
sync` does later) from a hard link in the W&B staging area, so eviction cannot take it away.
"""

from __future__ import annotations

import datetime
import os
import pickle
import platform
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from . import serialization, signing
from .cache import EntryManifest, FileRecord, StagedEntry
from .client import app_url
from .config import WriteConfig
from .errors import CacheCorruptionError, ConfigurationError, OfflineIndexError, SignatureError
from .fsutil import atomic_write_json, link_or_copy, remove_tree
from .index import published_by
from .keys import ALLOW_UNSIGNED_ENV, PRIVATE_KEY_ENV, Signer
from .naming import run_alias
from .runs import RunInfo, RunSpec, open_run, run_info, scoped_env
from .sources import check_directory, check_readable
from .version import __version__

if TYPE_CHECKING:
    from .store import ArtifactStore, Log, StoreSettings

INTEGRATION_NAME = "dagster_wandb_io"


@dataclass
class WriteResult:
    entity: str
    project: str
    name: str
    version: str
    digest: str
    type: str
    size: int
    id: str | None
    url: str | None
    aliases: list[str]
    run: RunInfo
    offline: bool
    wandb_metadata: dict[str, Any] = field(default_factory=dict)
    cache_path: str = ""
    # This run had already published the name: this is that publication, and nothing new was.
    reused_earlier: bool = False


def published_in_run(store: ArtifactStore, name: str, run: RunSpec) -> WriteResult | None:
    """The version of ``name`` this Dagster run already published, if any.

    A step can execute twice in one run: Celery redelivers a step whose worker died before
    the step's success was recorded, and a retry policy re-runs a step that failed after
    some of its outputs were written. The IO manager keeps the first publication so that
    every reader (downstream steps, other teams) sees one content per run and name.
    """
    s = store.settings
    alias = run_alias(run.dagster_run_id)
    if store.offline:
        try:
            indexed = store.index.resolve(
                s.entity, s.project, name, alias, trust=store.trust, allow_unsigned=s.allow_unsigned
            )
        except (OfflineIndexError, SignatureError):
            return None  # an untrusted index is set aside by the write that follows
        if indexed is None or not published_by(indexed.info, run.dagster_run_id):
            return None
        digest, version, type_, size = (
            indexed.digest,
            indexed.version,
            indexed.type,
            indexed.size,
        )
        aliases, artifact_id, metadata = list(indexed.aliases), None, {}
        url = _artifact_url(s, type_, name, version)
    else:
        remote = store.client.resolve(s.entity, s.project, name, alias)
        if remote is None or remote.metadata.get("source_dagster_run_id") != run.dagster_run_id:
            return None
        digest, version, type_, size = remote.digest, remote.version, remote.type, remote.size
        aliases, artifact_id, metadata = list(remote.aliases), remote.id, remote.metadata
        url = remote.url
    return WriteResult(
        entity=s.entity,
        project=s.project,
        name=name,
        version=version,
        digest=digest,
        type=type_,
        size=size,
        id=artifact_id,
        url=url,
        aliases=aliases,
        run=RunInfo(
            id=run.run_id,
            name=run.name,
            path=f"{s.entity}/{s.project}/{run.run_id}",
            url=f"{app_url(s.host)}/{s.entity}/{s.project}/runs/{run.run_id}",
        ),
        offline=store.offline,
        wandb_metadata=dict(metadata),
        cache_path=str(store.cache.entry(s.entity, s.project, name, digest).path),
        reused_earlier=True,
    )


def write(
    store: ArtifactStore,
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
    import wandb
    from wandb.data_types import WBValue

    s = store.settings
    # Before anything is written: who signs, and whether this team owns the entity.
    signer = store.signer(required=True)
    base_metadata: dict[str, Any] = {
        "source_integration": INTEGRATION_NAME,
        "source_integration_version": __version__,
        "source_dagster_run_id": run.dagster_run_id,
        "source_created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "source_python_version": platform.python_version(),
        **(extra_metadata or {}),
    }
    staging_dir = store.layout.wandb_staging_dir / uuid.uuid4().hex
    # wandb stages artifact files under WANDB_DATA_DIR; offline runs are synced later from
    # there, so it must be on the shared volume rather than a container's /tmp or $HOME.
    with (
        scoped_env({"WANDB_DATA_DIR": str(store.layout.wandb_data_dir)}),
        store.cache.stage() as staged,
    ):
        payload: serialization.WrittenPayload | None = None
        if isinstance(obj, wandb.Artifact):
            artifact = _adopt_artifact(obj, name, config, base_metadata, log)
        else:
            artifact = wandb.Artifact(
                name=name,
                type=config.type or "artifact",
                description=config.description,
                metadata=base_metadata,
            )
            if isinstance(obj, WBValue):
                if config.serialization_module is not None:
                    log(
                        "`serialization_module` is ignored: the output is a W&B object"
                        f" ({type(obj).__name__}), stored as JSON by W&B."
                    )
                artifact.add(obj, type(obj).__name__)
            else:
                payload = _serialize(store, signer, obj, config, staged.files_dir, name, run, log)
                artifact.metadata = {**artifact.metadata, **_payload_metadata(payload)}
                _add_payload_files(artifact, payload, staged.files_dir, staging_dir)
        _add_extras(artifact, config, offline=store.offline)
        _relocate_local_files(artifact, staging_dir, store.layout.root)

        aliases = _dedupe([*config.aliases, run_alias(run.dagster_run_id), "latest"])
        digest = artifact.digest
        # With a store of record, this host's copy is a cache like any other (evictable).
        origin = "stored" if store.offline and store.objects is not None else s.mode
        manifest = _manifest_for(artifact, staged, payload, s, origin=origin)
        if manifest.digest != digest:
            raise CacheCorruptionError(
                f"Internal error: computed digest {manifest.digest} != W&B digest {digest}."
            )
        entry = store.cache.commit(staged, manifest, s.ttl_minutes)
        # In use until the index names it: an eviction pass between the commit and the index
        # write would otherwise remove an entry the write then reports as published.
        store.cache.holds.hold(entry)
        if entry.read_manifest() is None:
            raise CacheCorruptionError(
                f"The cache entry {entry.path} was evicted the moment it was committed, before"
                " this write could hold it. Nothing was published; retry the step, and run"
                " eviction with a longer --older-than-minutes."
            )

        if store.offline:
            if store.objects is not None:
                # Stored before the index names it: a reader on any host can then fetch it.
                store.objects.upload(entry, manifest)
            indexed = store.index.record(
                s.entity,
                s.project,
                name,
                digest=digest,
                type=artifact.type,
                size=manifest.size,
                aliases=aliases,
                info={"dagster_run_id": run.dagster_run_id, "wandb_run_id": run.run_id},
                signer=signer,
                trust=store.trust,
                log=log,
                claim_run=run.dagster_run_id if once_per_run else None,
            )
            if indexed.claimed_earlier:
                store.cache.holds.release(entry)
                remove_tree(staging_dir)
                earlier = published_in_run(store, name, run)
                if earlier is None:  # pragma: no cover - the index just named it
                    raise OfflineIndexError(f"{name}: the run's earlier version vanished.")
                return earlier
            # Logged once the index holds the publication, so `wandb sync` uploads what the
            # platform's readers see.
            with (
                store.run_lock(run),
                open_run(store.layout, run, mode="offline") as wandb_run,
            ):
                wandb_run.log_artifact(artifact, aliases=aliases)
                info = run_info(wandb_run, run, app_url=app_url(s.host))
                offline_dir = Path(wandb_run.dir).parent
            atomic_write_json(staging_dir / ".offline_run.json", {"run_dir": str(offline_dir)})
            version = indexed.version
            artifact_id = None
            url = _artifact_url(s, artifact.type, name, version)
        else:
            with store.run_lock(run):
                logged = store.client.log_artifact(run, artifact, aliases)
            info = logged.run
            remove_tree(staging_dir)
            version, artifact_id, url = logged.version, logged.id, logged.url
        store.cache.holds.release(entry)
    return WriteResult(
        entity=s.entity,
        project=s.project,
        name=name,
        version=version,
        digest=digest,
        type=artifact.type,
        size=manifest.size,
        id=artifact_id,
        url=url,
        aliases=aliases,
        run=info,
        offline=store.offline,
        wandb_metadata=dict(artifact.metadata),
        cache_path=str(entry.path),
    )


def _serialize(
    store: ArtifactStore,
    signer: Signer | None,
    obj: Any,
    config: WriteConfig,
    dest: Path,
    name: str,
    run: RunSpec,
    log: Log,
) -> serialization.WrittenPayload:
    s = store.settings
    binding = None
    if signer is None:
        log(
            f"{PRIVATE_KEY_ENV} is not set: writing an UNSIGNED pickle because this deployment"
            f" sets {ALLOW_UNSIGNED_ENV}. Readers must allow unsigned pickles too."
        )
    else:
        binding = signing.Binding(
            entity=s.entity,
            project=s.project,
            name=name,
            team=signer.team,
        )
    return serialization.dump(
        obj,
        config.serialization_module or "pickle",
        config.serialization_parameters,
        dest,
        signer=signer,
        binding=binding,
        log=log,
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
