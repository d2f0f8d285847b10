"""The read path: resolve a version, open its cache entry, fetch what is missing, load it.

An entry missing from this host's cache starts as its manifest alone, and each file is fetched
the first time a reader needs it, once per host (under the entry's fill lock), from its store of
record: W&B online; offline, the object store when one is configured (artifact_objects.py). Offline
without one, the entry must already be in the cache, since nothing can be fetched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import serialization, signing
from .artifact_objects import ObjectStore
from .backends import Backends, Log, StoreSettings, indexed_version
from .cache import CacheEntry, EntryManifest, FileRecord, files_seal, md5_file_b64
from .config import Selection
from .errors import (
    CacheCorruptionError,
    SerializationError,
    SignatureError,
    WandbArtifactsIOManagerError,
)
from .index import OfflineIndex
from .local_artifact import LoadedArtifact
from .locks import FileLock
from .runs import RunSpec
from .wandb_client import ArtifactVersion, RemoteArtifact, WandbCloudClient, not_found


@dataclass
class ReadStats:
    bytes_downloaded: int = 0
    files_downloaded: int = 0


class Source(Protocol):
    """Where a missing entry's manifest and files come from: its store of record."""

    what: str

    @property
    def repair(self) -> str:
        """How to replace a stored file found corrupt."""
        ...

    def manifest(self, entry: CacheEntry) -> EntryManifest: ...
    def download_file(self, path: str, dest: Path) -> int: ...


@dataclass
class WandbSource:
    remote: RemoteArtifact
    client: WandbCloudClient
    what: str = "W&B"

    def manifest(self, entry: CacheEntry) -> EntryManifest:
        remote = self.remote
        manifest = EntryManifest(
            digest=remote.digest,
            entity=entry.entity,
            project=entry.project,
            name=entry.name,
            type=remote.type,
            files={p: FileRecord(md5=f.digest, size=f.size) for p, f in remote.files.items()},
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
        return manifest

    def download_file(self, path: str, dest: Path) -> int:
        return self.client.download_file(self.remote, path, dest)

    @property
    def repair(self) -> str:
        return "re-log the artifact"


@dataclass
class StoreSource:
    objects: ObjectStore
    entity: str
    project: str
    name: str
    digest: str
    what: str = "the object store"

    def manifest(self, entry: CacheEntry) -> EntryManifest:
        manifest = self.objects.manifest(self.entity, self.project, self.name, self.digest)
        if manifest is None:
            raise CacheCorruptionError(
                f"The offline index points to {self.name}@{self.digest}, but neither this"
                f" host's cache nor the object store ({self.objects.url}) has it. It was written"
                " before the store was configured, on a host whose cache was not migrated: run"
                " `dagster-wandb-io store migrate` there, or re-materialize the upstream asset."
            )
        manifest.origin = "stored"
        return manifest

    def download_file(self, path: str, dest: Path) -> int:
        return self.objects.download(self.entity, self.project, self.name, self.digest, path, dest)

    @property
    def repair(self) -> str:
        manifest = self.objects.manifest_url(self.entity, self.project, self.name, self.digest)
        return (
            f"delete {manifest}, then materialize the producing asset again: the next write of"
            " this content uploads it anew (a stored entry is never rewritten while its"
            " manifest exists)"
        )


@dataclass(frozen=True)
class _Resolved:
    """The version a read names, and where its files come from if this host lacks them."""

    version: ArtifactVersion
    source: Source | None
    # Online, the SDK's own artifact, for what LoadedArtifact delegates to it.
    handle: Any = None
    # Offline, the files' seal (cache.files_seal) its producer signed in the index; None for
    # W&B's artifacts and versions indexed before seals.
    seal: str | None = None


def read(
    backends: Backends,
    stats: ReadStats,
    name: str,
    selection: Selection,
    *,
    run: RunSpec | None,
    log: Log,
    entity: str | None,
    project: str | None,
) -> Any:
    s = dataclasses.replace(
        backends.settings,
        entity=entity or backends.settings.entity,
        project=project or backends.settings.project,
    )
    if backends.offline:
        found = _resolve_indexed(backends, s, name, selection.ref)
    else:
        found = _resolve_remote(backends, s, name, selection.ref, run)
    entry = backends.cache.entry(s.entity, s.project, name, found.version.digest)
    held_before = entry in backends.cache.holds
    manifest = _open_entry(backends, entry, found.source, found.seal)
    opened = _OpenEntry(backends, stats, entry, manifest, found.source, found.seal is not None)
    loaded = LoadedArtifact(
        manifest=manifest,
        version=found.version.version,
        aliases=list(found.version.aliases),
        files_dir=entry.files_dir,
        fetch=opened.file,
        artifact_id=found.version.id,
        url=found.version.url,
        wandb_artifact=found.handle,
    )
    return _select(opened, loaded, selection, held_before=held_before, log=log)


def _resolve_indexed(backends: Backends, s: StoreSettings, name: str, ref: str) -> _Resolved:
    indexed = backends.index.resolve(
        s.entity, s.project, name, ref, trust=backends.trust, allow_unsigned=s.allow_unsigned
    )
    if indexed is None:
        existing = _offline_names(backends.index, name, s.entity, s.project)
        raise not_found(s.entity, s.project, name, ref, existing, offline=True)
    version = indexed_version(s, name, indexed)
    source = None
    if backends.objects is not None:
        source = StoreSource(backends.objects, s.entity, s.project, name, indexed.digest)
    seal = indexed.info.get("files_seal")
    return _Resolved(version, source, seal=str(seal) if seal is not None else None)


def _resolve_remote(
    backends: Backends, s: StoreSettings, name: str, ref: str, run: RunSpec | None
) -> _Resolved:
    client = backends.client
    remote = client.resolve(s.entity, s.project, name, ref)
    if remote is None:
        existing = client.list_artifact_names(s.entity, s.project)
        raise not_found(s.entity, s.project, name, ref, existing, offline=False)
    if run is not None:
        with backends.run_lock(run):
            client.use_artifact(run, remote)
    return _Resolved(remote, WandbSource(remote, client), remote.handle)


def _select(
    opened: _OpenEntry,
    loaded: LoadedArtifact,
    selection: Selection,
    *,
    held_before: bool,
    log: Log,
) -> Any:
    """What the reader asked for: one W&B object, one file's path, the payload's value, or the
    artifact itself."""
    holds = opened.backends.cache.holds
    if selection.get is not None:
        return _wandb_object(loaded, selection.get)
    if selection.get_path is not None:
        if selection.get_path not in opened.manifest.files:
            raise WandbArtifactsIOManagerError(
                f"The artifact {loaded.qualified_name} has no file {selection.get_path!r}."
                f" Its files: {loaded.files()}."
            )
        path = opened.file(selection.get_path)
        holds.hold(opened.entry)
        return str(path)
    payload = serialization.payload_filename(opened.manifest.files)
    if payload is not None:
        value = opened.load_payload(payload, log)
        if not held_before:
            # A deserialized value no longer needs the cached files.
            holds.release(opened.entry)
        return value
    loaded.download()
    holds.hold(opened.entry)
    return loaded


def _wandb_object(loaded: LoadedArtifact, name: str) -> Any:
    value = loaded.get(name)
    if value is None:
        raise WandbArtifactsIOManagerError(
            f"The artifact {loaded.qualified_name} has no W&B object named"
            f" {name!r}. Its files: {loaded.files()}. Use the name given to"
            " `artifact.add(obj, name)` (without the .table.json suffix), or"
            " `get_path` for plain files."
        )
    return value


def _offline_names(index: OfflineIndex, name: str, entity: str, project: str) -> list[str]:
    names = index.names(entity, project)
    if name in names:
        refs = index.refs(entity, project, name)
        return [f"{name}:{r}" for r in refs]
    return names


def _open_entry(
    backends: Backends, entry: CacheEntry, source: Source | None, seal: str | None
) -> EntryManifest:
    """Hold `entry` in use and return its manifest, creating it from `source` if needed (or
    if it does not match `seal`, the files' seal its producer signed)."""
    settings = backends.settings

    def create(problem: CacheCorruptionError | None) -> None:
        if source is not None:
            _create_entry(backends, entry, source, seal)
        elif problem is not None:
            raise _offline_corruption(settings, entry, str(problem)) from problem
        else:
            raise CacheCorruptionError(
                f"The offline index points to {entry.name}@{entry.digest} but it is no"
                " longer in the shared cache (evicted, or written on another volume)."
                " Re-materialize the upstream asset, or read it online once its"
                " offline run has been uploaded with `wandb sync`."
            )

    return backends.cache.open(entry, settings.ttl_minutes, create, seal)


def _create_entry(backends: Backends, entry: CacheEntry, source: Source, seal: str | None) -> None:
    """Commit an entry holding `source`'s manifest; its files are fetched when first read."""
    manifest = source.manifest(entry)
    if seal is not None and files_seal(manifest.files) != seal:
        raise SignatureError(
            f"The manifest of {entry.entity}/{entry.project}/{entry.name}@{entry.digest} in"
            f" {source.what} lists file sizes or hashes other than those its producer signed in"
            f" the offline index: it was edited. Fix: {source.repair}."
        )
    with backends.cache.stage() as staged:
        backends.cache.commit(
            staged, manifest, backends.settings.ttl_minutes, complete=False, seal=seal
        )


@dataclass(frozen=True)
class _OpenEntry:
    """A cache entry a read holds open, and where its missing files come from (None: nowhere,
    offline without an object store)."""

    backends: Backends
    stats: ReadStats
    entry: CacheEntry
    manifest: EntryManifest
    source: Source | None
    sealed: bool  # the manifest matched the files' seal its producer signed

    def file(self, path: str, *, force: bool = False, verify: bool = True) -> Path:
        """The cached file, fetched once (under the fill lock) if missing or corrupt.

        `verify=False` only checks presence and size, for payloads whose loader checks the
        content while reading it anyway.
        """
        entry = self.entry
        if path not in self.manifest.files:
            raise KeyError(f"{path!r} is not a file of {entry.name}")
        record = self.manifest.files[path]

        def intact() -> bool:
            return not force and entry.has_intact_file(
                path, record, verify=verify, sealed=self.sealed
            )

        if intact():
            return entry.file_path(path)
        if self.source is None:
            raise self._corruption(f"{path} is missing or does not match its digest")
        with FileLock(entry.fill_lock_path):
            if intact():
                return entry.file_path(path)
            self._download(record, path, self.source)
        return entry.file_path(path)

    def _download(self, record: FileRecord, path: str, source: Source) -> None:
        entry = self.entry
        for attempt in range(2):
            part = entry.part_path(path)
            try:
                n = source.download_file(path, part)
                self.stats.bytes_downloaded += n
                self.stats.files_downloaded += 1
                if md5_file_b64(part) != record.md5:
                    if attempt == 0:
                        continue
                    raise CacheCorruptionError(
                        f"Downloaded {path!r} of {entry.entity}/{entry.project}/{entry.name}"
                        f"@{entry.digest} from {source.what} twice and its MD5 does not match"
                        f" the manifest. The stored file is corrupt: {source.repair}."
                    )
                entry.place_file(path, part, record.md5)
                return
            finally:
                part.unlink(missing_ok=True)

    def load_payload(self, payload: str, log: Log) -> Any:
        entry, manifest = self.entry, self.manifest
        sig = payload + signing.SIGNATURE_SUFFIX
        for attempt in range(2):
            path = self.file(payload, force=attempt > 0, verify=False)
            if sig in manifest.files:
                self.file(sig)
            try:
                return serialization.load(
                    path,
                    artifact=(entry.entity, entry.project, entry.name),
                    trust=self.backends.trust,
                    allow_unsigned=self.backends.settings.allow_unsigned,
                    expected_xxh128=entry.known_xxh128(payload, manifest.files[payload]),
                    log=log,
                )
            except (CacheCorruptionError, SignatureError) as exc:
                if (
                    isinstance(exc, SignatureError)
                    and md5_file_b64(path) == manifest.files[payload].md5
                ):
                    raise  # the content is what W&B stored: genuinely unsigned or tampered
                if self.source is None:
                    raise self._corruption(f"{payload} {exc}") from exc
                if attempt == 1:
                    raise
                log(f"The cached {payload} is corrupt ({exc}); fetching it again.")
        raise SerializationError("unreachable")  # pragma: no cover

    def _corruption(self, detail: str) -> CacheCorruptionError:
        return _offline_corruption(self.backends.settings, self.entry, detail)


def _offline_corruption(
    settings: StoreSettings, entry: CacheEntry, detail: str
) -> CacheCorruptionError:
    return CacheCorruptionError(
        f"The cached artifact {entry.entity}/{entry.project}/{entry.name} (digest"
        f" {entry.digest}) is corrupt: {detail}. It cannot be fetched again offline. Fix:"
        f" delete it (`dagster-wandb-io cache evict --base-dir {settings.base_dir}"
        f" --digest {entry.digest} --include-offline`) and re-materialize the upstream"
        " asset, or read it online (WANDB_MODE=online) to fetch a good copy."
    )
