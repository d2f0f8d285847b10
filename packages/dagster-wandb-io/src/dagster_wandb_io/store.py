"""Writing and reading artifacts through the shared cache, online or offline.

This layer knows nothing about Dagster contexts, so the multi-process tests and the benchmark
drive it directly; `io_manager.py` translates Dagster's contexts into these calls.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import pickle
import platform
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from . import serialization, signing
from .cache import (
    CacheEntry,
    EntryManifest,
    FileRecord,
    Layout,
    SharedCache,
    md5_file_b64,
    tree_xxh128_file,
)
from .client import WandbCloudClient, app_url, not_found
from .config import Selection, WriteConfig
from .errors import (
    CacheCorruptionError,
    ConfigurationError,
    SerializationError,
    SignatureError,
    WandbArtifactsIOManagerError,
)
from .fsutil import atomic_write_json, link_or_copy, read_json, remove_tree
from .index import OfflineIndex
from .local_artifact import LoadedArtifact
from .locks import FileLock
from .naming import run_alias, validate_path_component
from .runs import RunInfo, RunSpec, open_run, run_info, run_lock, scoped_env
from .version import __version__

INTEGRATION_NAME = "dagster_wandb_io"
Mode = Literal["online", "offline"]
Log = Callable[[str], None]
_MAX_HELD = 64


def _noop(_: str) -> None:
    pass


@dataclass(frozen=True)
class StoreSettings:
    base_dir: Path
    mode: Mode
    entity: str
    project: str
    host: str
    api_key: str | None = None
    ttl_minutes: int | None = None
    allow_unsigned: bool = False

    def __post_init__(self) -> None:
        # Checked on every construction, dataclasses.replace() included (a read that names
        # another team's entity and project builds new settings).
        validate_path_component(self.entity, what="entity")
        validate_path_component(self.project, what="project")


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


@dataclass
class ReadStats:
    bytes_downloaded: int = 0
    files_downloaded: int = 0


class ArtifactStore:
    def __init__(
        self,
        settings: StoreSettings,
        client: WandbCloudClient | None = None,
    ) -> None:
        self.settings = settings
        self.layout = Layout(Path(settings.base_dir))
        self.cache = SharedCache(self.layout)
        self.index = OfflineIndex(self.layout)
        self._client = client
        self._held: OrderedDict[str, FileLock] = OrderedDict()
        self.stats = ReadStats()

    @property
    def offline(self) -> bool:
        return self.settings.mode == "offline"

    @property
    def client(self) -> WandbCloudClient:
        if self._client is None:
            raise ConfigurationError("No W&B client is configured for online mode.")
        return self._client

    def close(self) -> None:
        """Release entries held in use for paths and artifacts handed to user code."""
        while self._held:
            _, lock = self._held.popitem(last=False)
            lock.release()

    def _release_hold(self, entry: CacheEntry) -> None:
        # flock locks of one process conflict across file descriptors: drop our shared hold
        # before taking the exclusive lock on the same entry, or we would wait on ourselves.
        lock = self._held.pop(str(entry.path), None)
        if lock is not None:
            lock.release()

    def _hold(self, entry: CacheEntry) -> None:
        key = str(entry.path)
        if key in self._held:
            self._held.move_to_end(key)
            return
        lock = FileLock(entry.lock_path, shared=True)
        lock.acquire()
        self._held[key] = lock
        while len(self._held) > _MAX_HELD:
            _, old = self._held.popitem(last=False)
            old.release()

    def _env(self) -> Any:
        # wandb stages artifact files under WANDB_DATA_DIR; offline runs are synced later from
        # there, so it must be on the shared volume rather than a container's /tmp or $HOME.
        return scoped_env({"WANDB_DATA_DIR": str(self.layout.wandb_data_dir)})

    # ------------------------------------------------------------------ writing

    def published_in_run(self, name: str, run: RunSpec) -> WriteResult | None:
        """The version of ``name`` this Dagster run already published, if any.

        A step can execute twice in one run: Celery redelivers a step whose worker died before
        the step's success was recorded, and a retry policy re-runs a step that failed after
        some of its outputs were written. The IO manager keeps the first publication so that
        every reader (downstream steps, other teams) sees one content per run and name.
        """
        s = self.settings
        alias = run_alias(run.dagster_run_id)
        if self.offline:
            indexed = self.index.resolve(s.entity, s.project, name, alias)
            if indexed is None or indexed.info.get("dagster_run_id") != run.dagster_run_id:
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
            remote = self.client.resolve(s.entity, s.project, name, alias)
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
            offline=self.offline,
            wandb_metadata=dict(metadata),
            cache_path=str(self.cache.entry(s.entity, s.project, name, digest).path),
        )

    def write(
        self,
        obj: Any,
        *,
        name: str,
        config: WriteConfig,
        run: RunSpec,
        log: Log = _noop,
        extra_metadata: dict[str, Any] | None = None,
    ) -> WriteResult:
        import wandb
        from wandb.data_types import WBValue

        s = self.settings
        base_metadata: dict[str, Any] = {
            "source_integration": INTEGRATION_NAME,
            "source_integration_version": __version__,
            "source_dagster_run_id": run.dagster_run_id,
            "source_created_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "source_python_version": platform.python_version(),
            **(extra_metadata or {}),
        }
        staging_dir = self.layout.wandb_staging_dir / uuid.uuid4().hex
        with self._env(), self.cache.stage() as staged:
            payload: serialization.WrittenPayload | None = None
            if isinstance(obj, wandb.Artifact):
                artifact = self._adopt_artifact(obj, name, config, base_metadata, log)
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
                    payload = self._serialize(obj, config, staged.files_dir, log)
                    artifact.metadata = {**artifact.metadata, **_payload_metadata(payload)}
                    self._add_payload_files(artifact, payload, staged.files_dir, staging_dir)
            self._add_extras(artifact, config)
            self._relocate_local_files(artifact, staging_dir)

            aliases = _dedupe([*config.aliases, run_alias(run.dagster_run_id), "latest"])
            digest = artifact.digest
            manifest = self._manifest_for(artifact, staged.files_dir, payload, origin=s.mode)
            if manifest.digest != digest:
                raise CacheCorruptionError(
                    f"Internal error: computed digest {manifest.digest} != W&B digest {digest}."
                )
            self._release_hold(self.cache.entry(s.entity, s.project, name, digest))
            entry = self.cache.commit(staged, manifest, s.ttl_minutes)

            with run_lock(self.layout, run):
                if self.offline:
                    with open_run(self.layout, run, mode="offline") as wandb_run:
                        wandb_run.log_artifact(artifact, aliases=aliases)
                        info = run_info(wandb_run, run, app_url=app_url(s.host))
                        offline_dir = Path(wandb_run.dir).parent
                    atomic_write_json(
                        staging_dir / ".offline_run.json", {"run_dir": str(offline_dir)}
                    )
                else:
                    logged = self.client.log_artifact(run, artifact, aliases)
                    info = logged.run
            if self.offline:
                indexed = self.index.record(
                    s.entity,
                    s.project,
                    name,
                    digest=digest,
                    type=artifact.type,
                    size=manifest.size,
                    aliases=aliases,
                    info={"dagster_run_id": run.dagster_run_id, "wandb_run_id": info.id},
                )
                version = indexed.version
                artifact_id = None
                url = _artifact_url(s, artifact.type, name, version)
            else:
                remove_tree(staging_dir)
                version, artifact_id, url = logged.version, logged.id, logged.url
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
            offline=self.offline,
            wandb_metadata=dict(artifact.metadata),
            cache_path=str(entry.path),
        )

    def _serialize(
        self, obj: Any, config: WriteConfig, dest: Path, log: Log
    ) -> serialization.WrittenPayload:
        key = signing.load_signing_key(required=not self.settings.allow_unsigned)
        if key is None:
            log(
                f"{signing.SIGNING_KEY_ENV} is not set: writing an UNSIGNED pickle because"
                " `allow_unsigned_pickles` is true. Readers must also allow unsigned pickles."
            )
        return serialization.dump(
            obj,
            config.serialization_module or "pickle",
            config.serialization_parameters,
            dest,
            key=key,
            log=log,
        )

    @staticmethod
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
        self,
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

    def _add_extras(self, artifact: Any, config: WriteConfig) -> None:
        for kwargs in config.add_files:
            artifact.add_file(**kwargs)
        for kwargs in config.add_dirs:
            artifact.add_dir(**kwargs)
        for kwargs in config.add_references:
            if self.offline and kwargs.get("checksum") is not True:
                self._add_unchecked_reference(artifact, **kwargs)
            else:
                artifact.add_reference(**kwargs)

    @staticmethod
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

    def _relocate_local_files(self, artifact: Any, staging_dir: Path) -> None:
        """Make every file of the artifact live on the shared volume until it is uploaded."""
        root = self.layout.root.resolve()
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
        self,
        artifact: Any,
        files_dir: Path,
        payload: serialization.WrittenPayload | None,
        *,
        origin: str,
    ) -> EntryManifest:
        s = self.settings
        known = {payload.filename: payload.tree_xxh128} if payload else {}
        files: dict[str, FileRecord] = {}
        refs: dict[str, dict[str, Any]] = {}
        for path, entry in artifact.manifest.entries.items():
            if entry.ref is not None:
                refs[path] = {"ref": entry.ref, "digest": str(entry.digest), "size": entry.size}
                continue
            dest = files_dir / path
            if not dest.exists():
                link_or_copy(Path(entry.local_path), dest)
            xxh = known.get(path) or tree_xxh128_file(dest)
            files[path] = FileRecord(md5=str(entry.digest), size=int(entry.size or 0), xxh128=xxh)
        return EntryManifest(
            digest=artifact.digest,
            entity=s.entity,
            project=s.project,
            name=artifact.name.split(":")[0],
            type=artifact.type,
            files=files,
            references=refs,
            description=artifact.description,
            metadata=dict(artifact.metadata),
            origin=origin,
        )

    # ------------------------------------------------------------------ reading

    def read(
        self,
        name: str,
        selection: Selection,
        *,
        run: RunSpec | None = None,
        log: Log = _noop,
        entity: str | None = None,
        project: str | None = None,
    ) -> Any:
        """Read ``name``; ``entity``/``project`` name another team's, else this store's own."""
        s = dataclasses.replace(
            self.settings,
            entity=entity or self.settings.entity,
            project=project or self.settings.project,
        )
        ref = selection.ref
        remote = None
        if self.offline:
            indexed = self.index.resolve(s.entity, s.project, name, ref)
            if indexed is None:
                raise not_found(
                    s.entity,
                    s.project,
                    name,
                    ref,
                    self._offline_names(name, s.entity, s.project),
                    offline=True,
                )
            digest, version, aliases, artifact_id, url = (
                indexed.digest,
                indexed.version,
                list(indexed.aliases),
                None,
                None,
            )
        else:
            remote = self.client.resolve(s.entity, s.project, name, ref)
            if remote is None:
                raise not_found(
                    s.entity,
                    s.project,
                    name,
                    ref,
                    self.client.list_artifact_names(s.entity, s.project),
                    offline=False,
                )
            if run is not None:
                with run_lock(self.layout, run):
                    self.client.use_artifact(run, remote)
            digest, version, aliases, artifact_id, url = (
                remote.digest,
                remote.version,
                list(remote.aliases),
                remote.id,
                remote.url,
            )

        entry = self.cache.entry(s.entity, s.project, name, digest)
        held_before = str(entry.path) in self._held
        manifest = self._open_entry(entry, remote)

        def fetch(path: str) -> Path:
            return self._ensure_file(entry, manifest, path, remote)

        loaded = LoadedArtifact(
            manifest=manifest,
            version=version,
            aliases=aliases,
            files_dir=entry.files_dir,
            fetch=fetch,
            artifact_id=artifact_id,
            url=url,
            wandb_artifact=remote.handle if remote is not None else None,
        )
        if selection.get is not None:
            value = loaded.get(selection.get)
            if value is None:
                raise WandbArtifactsIOManagerError(
                    f"The artifact {loaded.qualified_name} has no W&B object named"
                    f" {selection.get!r}. Its files: {loaded.files()}. Use the name given to"
                    " `artifact.add(obj, name)` (without the .table.json suffix), or"
                    " `get_path` for plain files."
                )
            return value
        if selection.get_path is not None:
            if selection.get_path not in manifest.files:
                raise WandbArtifactsIOManagerError(
                    f"The artifact {loaded.qualified_name} has no file {selection.get_path!r}."
                    f" Its files: {loaded.files()}."
                )
            path = fetch(selection.get_path)
            self._hold(entry)
            return str(path)
        payload = serialization.payload_filename(manifest.files)
        if payload is not None:
            value = self._load_payload(entry, manifest, payload, remote, log)
            if not held_before:
                # A deserialized value no longer needs the cached files.
                self._release_hold(entry)
            return value
        loaded.download()
        self._hold(entry)
        return loaded

    def _offline_names(self, name: str, entity: str, project: str) -> list[str]:
        names = self.index.names(entity, project)
        if name in names:
            refs = self.index.refs(entity, project, name)
            return [f"{name}:{r}" for r in refs]
        return names

    def _open_entry(self, entry: CacheEntry, remote: Any) -> EntryManifest:
        """Hold `entry` in use and return its manifest, creating it from `remote` if needed."""
        for _ in range(5):
            lock = FileLock(entry.lock_path, shared=True)
            lock.acquire()
            try:
                manifest = entry.read_manifest()
            except CacheCorruptionError as exc:
                lock.release()
                if remote is None:
                    raise self._offline_corruption(entry, str(exc)) from exc
                self._create_entry(entry, remote, replace=True)
                continue
            if manifest is None:
                lock.release()
                if remote is None:
                    raise CacheCorruptionError(
                        f"The offline index points to {entry.name}@{entry.digest} but it is no"
                        " longer in the shared cache (evicted, or written on another volume)."
                        " Re-materialize the upstream asset, or read it online once its"
                        " offline run has been uploaded with `wandb sync`."
                    )
                self._create_entry(entry, remote, replace=False)
                continue
            entry.touch(self.settings.ttl_minutes)
            key = str(entry.path)
            if key in self._held:
                lock.release()
            else:
                self._held[key] = lock
                while len(self._held) > _MAX_HELD:
                    _, old = self._held.popitem(last=False)
                    old.release()
            return manifest
        raise WandbArtifactsIOManagerError(
            f"Could not open the cache entry {entry.path}: it kept being evicted. Run eviction"
            " less aggressively (a larger --older-than-minutes)."
        )

    def _create_entry(self, entry: CacheEntry, remote: Any, *, replace: bool) -> None:
        self._release_hold(entry)
        with FileLock(entry.lock_path):
            try:
                if entry.read_manifest() is not None and not replace:
                    return
            except CacheCorruptionError:
                pass
            staged = self.cache.stage()
            try:
                manifest = EntryManifest(
                    digest=remote.digest,
                    entity=entry.entity,
                    project=entry.project,
                    name=entry.name,
                    type=remote.type,
                    files={
                        p: FileRecord(md5=f.digest, size=f.size) for p, f in remote.files.items()
                    },
                    references=dict(remote.references),
                    description=remote.description,
                    metadata=dict(remote.metadata),
                    origin="fetched",
                )
                if manifest.computed_digest() != remote.digest:
                    raise CacheCorruptionError(
                        f"W&B returned a manifest for {remote.name}:{remote.version} whose"
                        f" files do not add up to its digest {remote.digest}."
                    )
                atomic_write_json(staged.path / "entry.json", manifest.to_json())
                remove_tree(entry.path)
                entry.path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged.path, entry.path)
                entry.touch(self.settings.ttl_minutes)
            finally:
                staged.__exit__(None, None, None)

    def _checks_path(self, entry: CacheEntry, path: str) -> Path:
        return entry.path / "checks" / (hashlib.sha1(path.encode()).hexdigest() + ".json")

    def _known_xxh128(self, entry: CacheEntry, manifest: EntryManifest, path: str) -> str | None:
        record = manifest.files[path]
        if record.xxh128 is not None:
            return record.xxh128
        try:
            data = read_json(self._checks_path(entry, path))
            if data.get("md5") == record.md5:
                return str(data["xxh128"])
        except (OSError, ValueError, KeyError):
            pass
        return None

    def _file_ok(self, entry: CacheEntry, manifest: EntryManifest, path: str) -> bool:
        record = manifest.files[path]
        xxh = self._known_xxh128(entry, manifest, path)
        return entry.check_file(path, FileRecord(record.md5, record.size, xxh))

    def _present(
        self, entry: CacheEntry, manifest: EntryManifest, path: str, *, verify: bool
    ) -> bool:
        if verify:
            return self._file_ok(entry, manifest, path)
        try:
            return entry.file_path(path).stat().st_size == manifest.files[path].size
        except FileNotFoundError:
            return False

    def _ensure_file(
        self,
        entry: CacheEntry,
        manifest: EntryManifest,
        path: str,
        remote: Any,
        *,
        force: bool = False,
        verify: bool = True,
    ) -> Path:
        """The cached file, fetched once (under the fill lock) if missing or corrupt.

        `verify=False` only checks presence and size, for payloads whose loader checks the
        content while reading it anyway.
        """
        if path not in manifest.files:
            raise KeyError(f"{path!r} is not a file of {entry.name}")
        if not force and self._present(entry, manifest, path, verify=verify):
            return entry.file_path(path)
        if remote is None:
            raise self._offline_corruption(entry, f"{path} is missing or does not match its digest")
        with FileLock(entry.fill_lock_path):
            if not force and self._present(entry, manifest, path, verify=verify):
                return entry.file_path(path)
            self._download(entry, manifest, path, remote)
        return entry.file_path(path)

    def _download(self, entry: CacheEntry, manifest: EntryManifest, path: str, remote: Any) -> None:
        record = manifest.files[path]
        final = entry.file_path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
            try:
                n = self.client.download_file(remote, path, tmp)
                self.stats.bytes_downloaded += n
                self.stats.files_downloaded += 1
                if md5_file_b64(tmp) != record.md5:
                    if attempt == 0:
                        continue
                    raise CacheCorruptionError(
                        f"Downloaded {path!r} of {remote.name}:{remote.version} twice and its"
                        " MD5 does not match the W&B manifest. The stored file is corrupt;"
                        " re-log the artifact."
                    )
                xxh = tree_xxh128_file(tmp)
                os.replace(tmp, final)
                atomic_write_json(
                    self._checks_path(entry, path), {"md5": record.md5, "xxh128": xxh}
                )
                return
            finally:
                tmp.unlink(missing_ok=True)

    def _offline_corruption(self, entry: CacheEntry, detail: str) -> CacheCorruptionError:
        return CacheCorruptionError(
            f"The cached artifact {entry.entity}/{entry.project}/{entry.name} (digest"
            f" {entry.digest}) is corrupt: {detail}. It cannot be fetched again offline. Fix:"
            f" delete it (`dagster-wandb-io cache evict --base-dir {self.settings.base_dir}"
            f" --digest {entry.digest} --include-offline`) and re-materialize the upstream"
            " asset, or read it online (WANDB_MODE=online) to fetch a good copy."
        )

    def _load_payload(
        self, entry: CacheEntry, manifest: EntryManifest, payload: str, remote: Any, log: Log
    ) -> Any:
        sig = payload + signing.SIGNATURE_SUFFIX
        key = signing.load_signing_key(required=False)
        for attempt in range(2):
            force = attempt > 0
            path = self._ensure_file(entry, manifest, payload, remote, force=force, verify=False)
            if sig in manifest.files:
                self._ensure_file(entry, manifest, sig, remote)
            try:
                return serialization.load(
                    path,
                    key=key,
                    allow_unsigned=self.settings.allow_unsigned,
                    expected_xxh128=self._known_xxh128(entry, manifest, payload),
                    log=log,
                )
            except (CacheCorruptionError, SignatureError) as exc:
                if (
                    isinstance(exc, SignatureError)
                    and md5_file_b64(path) == manifest.files[payload].md5
                ):
                    raise  # the content is what W&B stored: genuinely unsigned or tampered
                if remote is None:
                    raise self._offline_corruption(entry, f"{payload} {exc}") from exc
                if attempt == 1:
                    raise
                log(f"The cached {payload} is corrupt ({exc}); fetching it again.")
        raise SerializationError("unreachable")  # pragma: no cover


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
