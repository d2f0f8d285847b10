"""The read path: resolve a version, open its cache entry, fetch what is missing, load it.

An entry missing from this host's cache starts as its manifest alone, and each file is fetched
the first time a reader needs it, once per host (under the entry's fill lock), from its store of
record: W&B online; offline, the object store when one is configured (object_store.py). Offline
without one, the entry must already be in the cache, since nothing can be fetched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import serialization, signing
from .cache import CacheEntry, EntryManifest, FileRecord, md5_file_b64
from .client import RemoteArtifact, not_found
from .config import Selection
from .errors import (
    CacheCorruptionError,
    SerializationError,
    SignatureError,
    WandbArtifactsIOManagerError,
)
from .local_artifact import LoadedArtifact
from .locks import FileLock
from .object_store import ObjectStore
from .runs import RunSpec

if TYPE_CHECKING:
    from .client import WandbCloudClient
    from .store import ArtifactStore, Log


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


def read(
    store: ArtifactStore,
    name: str,
    selection: Selection,
    *,
    run: RunSpec | None,
    log: Log,
    entity: str | None,
    project: str | None,
) -> Any:
    s = dataclasses.replace(
        store.settings,
        entity=entity or store.settings.entity,
        project=project or store.settings.project,
    )
    ref = selection.ref
    remote = None
    source: Source | None = None
    if store.offline:
        indexed = store.index.resolve(
            s.entity, s.project, name, ref, trust=store.trust, allow_unsigned=s.allow_unsigned
        )
        if indexed is None:
            raise not_found(
                s.entity,
                s.project,
                name,
                ref,
                _offline_names(store, name, s.entity, s.project),
                offline=True,
            )
        digest, version, aliases, artifact_id, url = (
            indexed.digest,
            indexed.version,
            list(indexed.aliases),
            None,
            None,
        )
        if store.objects is not None:
            source = StoreSource(store.objects, s.entity, s.project, name, digest)
    else:
        remote = store.client.resolve(s.entity, s.project, name, ref)
        if remote is None:
            raise not_found(
                s.entity,
                s.project,
                name,
                ref,
                store.client.list_artifact_names(s.entity, s.project),
                offline=False,
            )
        if run is not None:
            with store.run_lock(run):
                store.client.use_artifact(run, remote)
        digest, version, aliases, artifact_id, url = (
            remote.digest,
            remote.version,
            list(remote.aliases),
            remote.id,
            remote.url,
        )
        source = WandbSource(remote, store.client)

    holds = store.cache.holds
    entry = store.cache.entry(s.entity, s.project, name, digest)
    held_before = entry in holds
    manifest = _open_entry(store, entry, source)

    def fetch(path: str) -> Path:
        return _ensure_file(store, entry, manifest, path, source)

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
        holds.hold(entry)
        return str(path)
    payload = serialization.payload_filename(manifest.files)
    if payload is not None:
        value = _load_payload(store, entry, manifest, payload, source, log)
        if not held_before:
            # A deserialized value no longer needs the cached files.
            holds.release(entry)
        return value
    loaded.download()
    holds.hold(entry)
    return loaded


def _offline_names(store: ArtifactStore, name: str, entity: str, project: str) -> list[str]:
    names = store.index.names(entity, project)
    if name in names:
        refs = store.index.refs(entity, project, name)
        return [f"{name}:{r}" for r in refs]
    return names


def _open_entry(store: ArtifactStore, entry: CacheEntry, source: Source | None) -> EntryManifest:
    """Hold `entry` in use and return its manifest, creating it from `source` if needed."""

    def create(problem: CacheCorruptionError | None) -> None:
        if source is not None:
            _create_entry(store, entry, source)
        elif problem is not None:
            raise _offline_corruption(store, entry, str(problem)) from problem
        else:
            raise CacheCorruptionError(
                f"The offline index points to {entry.name}@{entry.digest} but it is no"
                " longer in the shared cache (evicted, or written on another volume)."
                " Re-materialize the upstream asset, or read it online once its"
                " offline run has been uploaded with `wandb sync`."
            )

    return store.cache.open(entry, store.settings.ttl_minutes, create)


def _create_entry(store: ArtifactStore, entry: CacheEntry, source: Source) -> None:
    """Commit an entry holding `source`'s manifest; its files are fetched when first read."""
    manifest = source.manifest(entry)
    with store.cache.stage() as staged:
        store.cache.commit(staged, manifest, store.settings.ttl_minutes, complete=False)


def _ensure_file(
    store: ArtifactStore,
    entry: CacheEntry,
    manifest: EntryManifest,
    path: str,
    source: Source | None,
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
    record = manifest.files[path]
    if not force and entry.has_intact_file(path, record, verify=verify):
        return entry.file_path(path)
    if source is None:
        raise _offline_corruption(store, entry, f"{path} is missing or does not match its digest")
    with FileLock(entry.fill_lock_path):
        if not force and entry.has_intact_file(path, record, verify=verify):
            return entry.file_path(path)
        _download(store, entry, record, path, source)
    return entry.file_path(path)


def _download(
    store: ArtifactStore, entry: CacheEntry, record: FileRecord, path: str, source: Source
) -> None:
    for attempt in range(2):
        part = entry.part_path(path)
        try:
            n = source.download_file(path, part)
            store.stats.bytes_downloaded += n
            store.stats.files_downloaded += 1
            if md5_file_b64(part) != record.md5:
                if attempt == 0:
                    continue
                raise CacheCorruptionError(
                    f"Downloaded {path!r} of {entry.entity}/{entry.project}/{entry.name}"
                    f"@{entry.digest} from {source.what} twice and its MD5 does not match the"
                    f" manifest. The stored file is corrupt: {source.repair}."
                )
            entry.place_file(path, part, record.md5)
            return
        finally:
            part.unlink(missing_ok=True)


def _offline_corruption(
    store: ArtifactStore, entry: CacheEntry, detail: str
) -> CacheCorruptionError:
    return CacheCorruptionError(
        f"The cached artifact {entry.entity}/{entry.project}/{entry.name} (digest"
        f" {entry.digest}) is corrupt: {detail}. It cannot be fetched again offline. Fix:"
        f" delete it (`dagster-wandb-io cache evict --base-dir {store.settings.base_dir}"
        f" --digest {entry.digest} --include-offline`) and re-materialize the upstream"
        " asset, or read it online (WANDB_MODE=online) to fetch a good copy."
    )


def _load_payload(
    store: ArtifactStore,
    entry: CacheEntry,
    manifest: EntryManifest,
    payload: str,
    source: Source | None,
    log: Log,
) -> Any:
    sig = payload + signing.SIGNATURE_SUFFIX
    for attempt in range(2):
        force = attempt > 0
        path = _ensure_file(store, entry, manifest, payload, source, force=force, verify=False)
        if sig in manifest.files:
            _ensure_file(store, entry, manifest, sig, source)
        try:
            return serialization.load(
                path,
                artifact=(entry.entity, entry.project, entry.name),
                trust=store.trust,
                allow_unsigned=store.settings.allow_unsigned,
                expected_xxh128=entry.known_xxh128(payload, manifest.files[payload]),
                log=log,
            )
        except (CacheCorruptionError, SignatureError) as exc:
            if (
                isinstance(exc, SignatureError)
                and md5_file_b64(path) == manifest.files[payload].md5
            ):
                raise  # the content is what W&B stored: genuinely unsigned or tampered
            if source is None:
                raise _offline_corruption(store, entry, f"{payload} {exc}") from exc
            if attempt == 1:
                raise
            log(f"The cached {payload} is corrupt ({exc}); fetching it again.")
    raise SerializationError("unreachable")  # pragma: no cover
