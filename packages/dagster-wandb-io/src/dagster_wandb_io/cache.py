"""The shared, content-addressed artifact cache.

Layout under ``<base_dir>/dagster_wandb_io/``::

    cache/<entity>/<project>/<name>/<digest>/entry.json     manifest (per-file md5, size, xxh128)
    cache/<entity>/<project>/<name>/<digest>/files/...      the artifact's files
    cache/<entity>/<project>/<name>/<digest>/last_used.json last use + TTL, written explicitly
    cache/<entity>/<project>/<name>/<digest>/checks/...     xxh128 of files fetched later
    cache/<entity>/<project>/<name>/<digest>.lock           shared: in use; exclusive: commit, evict
    cache/<entity>/<project>/<name>/<digest>.fill.lock      serializes fetchers of missing files
    tmp/<uuid>/                                             entries being built (same volume)

`<digest>` is the W&B artifact manifest digest, which is computed locally from file MD5s, so the
same content gets the same entry online and offline. Entries appear by an atomic directory
rename under the exclusive lock; files fetched later appear by atomic file renames.

An entry fetched from W&B starts as its manifest alone, and W&B manifests carry only MD5s; the
xxh128 of each file fetched into it is kept under ``checks/`` so later uses check it cheaply.

Every team's code can write to the cache volume. The digest in the path covers the MD5s (a
manifest that does not compute to it is refused), but not the xxh128s the cheap check trusts:
whoever edits a file could edit its xxh128 too. So an offline write signs its files' seal
(``files_seal``: each path, size, MD5 and xxh128) in the owner-signed offline index, and a read
checks the manifest against it before trusting any xxh128; an entry without a signed seal (read
from W&B, or indexed before seals) is checked by MD5 instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from . import signing
from .errors import CacheCorruptionError, ConfigurationError, WandbArtifactsIOManagerError
from .fsutil import atomic_write_json, link_or_copy, read_json, remove_tree
from .locks import FileLock

ROOT_DIRNAME = "dagster_wandb_io"
BASE_DIR_ENV = "DAGSTER_WANDB_IO_BASE_DIR"
ENTRY_FORMAT = 1
DEFAULT_TTL_MINUTES = 60 * 24 * 30
# Entries one process keeps held for user code; bounds its open file descriptors.
_MAX_HELD = 64
_MANIFEST_HEADER = b"wandb-artifact-manifest-v1\n"
_FILES_SEAL_HEADER = b"dagster-wandb-io/files-seal-v1\n"


def resolve_base_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """`base_dir` config, else $DAGSTER_WANDB_IO_BASE_DIR (the shared volume), else
    $DAGSTER_HOME (the seed's default)."""
    value = configured or os.environ.get(BASE_DIR_ENV) or os.environ.get("DAGSTER_HOME")
    if not value:
        raise ConfigurationError(
            "No base directory for the W&B artifact cache. Set `base_dir` on the IO manager,"
            f" or the {BASE_DIR_ENV} environment variable (the shared artifact-cache volume),"
            " or DAGSTER_HOME."
        )
    return Path(value).expanduser()


@dataclass(frozen=True)
class Layout:
    base_dir: Path

    @property
    def root(self) -> Path:
        return self.base_dir / ROOT_DIRNAME

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def wandb_dir(self) -> Path:
        return self.root / "wandb"

    @property
    def wandb_data_dir(self) -> Path:
        return self.wandb_dir / "data"

    @property
    def wandb_runs_dir(self) -> Path:
        return self.wandb_dir / "runs"

    @property
    def wandb_staging_dir(self) -> Path:
        return self.wandb_dir / "staging"


@dataclass(frozen=True)
class FileRecord:
    md5: str
    size: int
    xxh128: str | None = None


@dataclass
class EntryManifest:
    digest: str
    entity: str
    project: str
    name: str
    type: str
    files: dict[str, FileRecord]
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: str = "fetched"
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = ENTRY_FORMAT
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntryManifest:
        return cls(
            digest=data["digest"],
            entity=data["entity"],
            project=data["project"],
            name=data["name"],
            type=data["type"],
            files={p: FileRecord(**r) for p, r in data["files"].items()},
            references=dict(data.get("references") or {}),
            description=data.get("description"),
            metadata=dict(data.get("metadata") or {}),
            origin=data.get("origin", "fetched"),
            created_at=float(data.get("created_at", 0.0)),
        )

    def computed_digest(self) -> str:
        """The W&B manifest digest (md5 over sorted ``path:digest`` lines)."""
        entries = {p: r.md5 for p, r in self.files.items()}
        entries.update({p: str(r.get("digest")) for p, r in self.references.items()})
        h = hashlib.md5(_MANIFEST_HEADER)
        for path, digest in sorted(entries.items()):
            h.update(f"{path}:{digest}\n".encode())
        return h.hexdigest()

    @property
    def size(self) -> int:
        return sum(r.size for r in self.files.values()) + sum(
            int(r.get("size") or 0) for r in self.references.values()
        )


def tree_xxh128_file(path: Path, chunk_size: int = signing.CHUNK_SIZE) -> str:
    chunks = []
    length = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = signing.read_exact(f, chunk_size)
            if not block:
                break
            length += len(block)
            chunks.append(xxhash.xxh3_128(block).digest())
    return signing.tree_xxh128_from_chunks(chunks, length)


def files_seal(files: Mapping[str, FileRecord]) -> str | None:
    """The digest of every file's path, size, MD5 and xxh128, which an offline write signs in
    the index; None when a file's xxh128 is unknown (a manifest from W&B)."""
    if any(record.xxh128 is None for record in files.values()):
        return None
    seal = hashlib.sha256(_FILES_SEAL_HEADER)
    for path, record in sorted(files.items()):
        seal.update(json.dumps([path, record.size, record.md5, record.xxh128]).encode() + b"\n")
    return seal.hexdigest()


def md5_file_b64(path: Path) -> str:
    import base64

    h = hashlib.md5()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return base64.b64encode(h.digest()).decode()


class CacheEntry:
    def __init__(self, cache: SharedCache, entity: str, project: str, name: str, digest: str):
        self.cache = cache
        self.entity, self.project, self.name, self.digest = entity, project, name, digest
        parent = cache.layout.cache_dir / entity / project / name
        self.path = parent / digest
        self.lock_path = parent / f"{digest}.lock"
        self.fill_lock_path = parent / f"{digest}.fill.lock"

    @property
    def manifest_path(self) -> Path:
        return self.path / "entry.json"

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    @property
    def used_path(self) -> Path:
        return self.path / "last_used.json"

    def file_path(self, logical: str) -> Path:
        p = (self.files_dir / logical).resolve()
        if not p.is_relative_to(self.files_dir.resolve()):
            raise CacheCorruptionError(f"artifact path {logical!r} escapes the cache entry")
        return p

    def read_manifest(self, seal: str | None = None) -> EntryManifest | None:
        """The entry's manifest if it exists and matches the digest it is filed under, and
        `seal` (the files' seal its producer signed) when given."""
        try:
            manifest = EntryManifest.from_json(read_json(self.manifest_path))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheCorruptionError(
                f"The cache entry {self.path} has an unreadable manifest ({exc})."
            ) from exc
        if manifest.digest != self.digest or manifest.computed_digest() != self.digest:
            raise CacheCorruptionError(
                f"The cache entry {self.path} does not match its digest {self.digest}."
            )
        if seal is not None and files_seal(manifest.files) != seal:
            raise CacheCorruptionError(
                f"The cache entry {self.path} lists file sizes or hashes other than those its"
                " producer signed: its entry.json was edited."
            )
        return manifest

    def has_file(self, logical: str) -> bool:
        return self.file_path(logical).is_file()

    def _checks_path(self, logical: str) -> Path:
        return self.path / "checks" / (hashlib.sha1(logical.encode()).hexdigest() + ".json")

    def known_xxh128(self, logical: str, record: FileRecord) -> str | None:
        """The file's xxh128 from the manifest, else from the check recorded when it was fetched."""
        if record.xxh128 is not None:
            return record.xxh128
        try:
            data = read_json(self._checks_path(logical))
            if data.get("md5") == record.md5:
                return str(data["xxh128"])
        except (OSError, ValueError, KeyError):
            pass
        return None

    def has_intact_file(
        self, logical: str, record: FileRecord, *, verify: bool = True, sealed: bool = False
    ) -> bool:
        """Whether the cached file matches `record`; `verify=False` only checks its size.

        `sealed`: the manifest matched the seal its producer signed, so its xxh128 is trusted;
        otherwise the file is checked against its MD5, which the digest covers."""
        if verify:
            xxh = self.known_xxh128(logical, record) if sealed else None
            return self.check_file(logical, FileRecord(record.md5, record.size, xxh))
        try:
            return self.file_path(logical).stat().st_size == record.size
        except FileNotFoundError:
            return False

    def part_path(self, logical: str) -> Path:
        """A fresh temporary name beside the file, so placing it is an atomic rename."""
        final = self.file_path(logical)
        final.parent.mkdir(parents=True, exist_ok=True)
        return final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")

    def place_file(self, logical: str, part: Path, md5: str) -> None:
        """Rename a fetched file (already checked against `md5`) into the entry."""
        xxh = tree_xxh128_file(part)
        os.replace(part, self.file_path(logical))
        atomic_write_json(self._checks_path(logical), {"md5": md5, "xxh128": xxh})

    def check_file(self, logical: str, record: FileRecord) -> bool:
        """Integrity check of one cached file: size, then tree xxh128 (cheap), else MD5."""
        path = self.file_path(logical)
        try:
            if path.stat().st_size != record.size:
                return False
        except FileNotFoundError:
            return False
        if record.xxh128 is None:
            return md5_file_b64(path) == record.md5
        return tree_xxh128_file(path) == record.xxh128

    def touch(self, ttl_minutes: int | None) -> None:
        # Last use is recorded explicitly: atime is unreliable (noatime/relatime mounts).
        atomic_write_json(
            self.used_path,
            {
                "last_used": time.time(),
                "ttl_minutes": DEFAULT_TTL_MINUTES if ttl_minutes is None else ttl_minutes,
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )

    def last_used(self) -> tuple[float, int]:
        try:
            data = read_json(self.used_path)
            return float(data["last_used"]), int(data["ttl_minutes"])
        except (OSError, ValueError, KeyError, TypeError):
            try:
                return self.manifest_path.stat().st_mtime, DEFAULT_TTL_MINUTES
            except OSError:
                return 0.0, DEFAULT_TTL_MINUTES


class StagedEntry:
    """A directory being built in ``tmp/``; committed into the cache by an atomic rename."""

    def __init__(self, cache: SharedCache) -> None:
        self.cache = cache
        self.path = cache.layout.tmp_dir / uuid.uuid4().hex
        self.files_dir = self.path / "files"
        self._lock = FileLock(self.path.with_name(self.path.name + ".lock"))
        self._lock.acquire()
        self.files_dir.mkdir(parents=True)

    def add_file(
        self, logical: str, src: str, md5: str, size: int, xxh128: str | None = None
    ) -> FileRecord:
        """Hard-link `src` into the entry unless the file is already there; describe it.

        `xxh128` is passed when the writer computed it while writing, to spare a re-read.
        """
        dest = self.files_dir / logical
        if not dest.exists():
            link_or_copy(Path(src), dest)
        return FileRecord(md5=md5, size=size, xxh128=xxh128 or tree_xxh128_file(dest))

    def discard(self) -> None:
        remove_tree(self.path)
        self._lock.path.unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> StagedEntry:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path.exists():
            self.discard()
        else:
            self._lock.path.unlink(missing_ok=True)
            self._lock.release()


class Holds:
    """Entries this process keeps in use after the call that opened them returned.

    Paths and artifacts handed to user code must stay valid for the rest of the run, so their
    entry's shared lock is kept until `release_all`. At most `_MAX_HELD` are kept; the least
    recently used are released first.
    """

    def __init__(self) -> None:
        self._locks: OrderedDict[str, FileLock] = OrderedDict()

    def __contains__(self, entry: CacheEntry) -> bool:
        return str(entry.path) in self._locks

    def hold(self, entry: CacheEntry) -> None:
        """Hold `entry` (taking its shared lock if not held yet), as the most recently used."""
        key = str(entry.path)
        if key in self._locks:
            self._locks.move_to_end(key)
            return
        lock = FileLock(entry.lock_path, shared=True)
        lock.acquire()
        self._add(key, lock)

    def adopt(self, entry: CacheEntry, lock: FileLock) -> None:
        """Keep `lock` (a shared lock on `entry`) as its hold; redundant if already held."""
        key = str(entry.path)
        if key in self._locks:
            lock.release()
        else:
            self._add(key, lock)

    def _add(self, key: str, lock: FileLock) -> None:
        self._locks[key] = lock
        while len(self._locks) > _MAX_HELD:
            _, old = self._locks.popitem(last=False)
            old.release()

    def release(self, entry: CacheEntry) -> None:
        lock = self._locks.pop(str(entry.path), None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        while self._locks:
            _, lock = self._locks.popitem(last=False)
            lock.release()


class SharedCache:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.holds = Holds()

    def entry(self, entity: str, project: str, name: str, digest: str) -> CacheEntry:
        return CacheEntry(self, entity, project, name, digest)

    def stage(self) -> StagedEntry:
        return StagedEntry(self)

    def commit(
        self,
        staged: StagedEntry,
        manifest: EntryManifest,
        ttl: int | None,
        *,
        complete: bool = True,
        seal: str | None = None,
    ) -> CacheEntry:
        """Move a staged entry into place unless a valid one already exists (same content).

        `complete`: the staged entry holds every file (a write), so an existing entry is only
        kept if its files check out. An entry staged from a W&B manifest alone (its files are
        fetched later) keeps any existing entry whose manifest is readable, with the files
        already fetched into it. Either way an existing entry must match `seal` (a write's own
        files, when complete): one edited on the volume is replaced.
        """
        if complete:
            seal = files_seal(manifest.files)
        entry = self.entry(manifest.entity, manifest.project, manifest.name, manifest.digest)
        atomic_write_json(staged.path / "entry.json", manifest.to_json())
        entry.path.parent.mkdir(parents=True, exist_ok=True)
        # flock locks of one process conflict across file descriptors: drop our shared hold
        # before taking the exclusive lock on the same entry, or we would wait on ourselves.
        self.holds.release(entry)
        with FileLock(entry.lock_path):
            existing = None
            try:
                existing = entry.read_manifest(seal)
            except CacheCorruptionError:
                existing = None
            if existing is not None and (
                not complete or all(entry.check_file(p, r) for p, r in existing.files.items())
            ):
                if manifest.origin == "offline" and existing.origin != "offline":
                    existing.origin = "offline"
                    atomic_write_json(entry.manifest_path, existing.to_json())
                staged.discard()
            else:
                remove_tree(entry.path)
                os.replace(staged.path, entry.path)
            entry.touch(ttl)
        return entry

    def commit_held(
        self, staged: StagedEntry, manifest: EntryManifest, ttl: int | None
    ) -> CacheEntry:
        """Commit a written entry and hold it in use until the writer releases it.

        Held until the index names it: an eviction pass between the commit and the index
        write would otherwise remove an entry the write then reports as published.
        """
        entry = self.commit(staged, manifest, ttl)
        self.holds.hold(entry)
        if entry.read_manifest() is None:
            raise CacheCorruptionError(
                f"The cache entry {entry.path} was evicted the moment it was committed, before"
                " this write could hold it. Nothing was published; retry the step, and run"
                " eviction with a longer --older-than-minutes."
            )
        return entry

    def open(
        self,
        entry: CacheEntry,
        ttl: int | None,
        create: Callable[[CacheCorruptionError | None], None],
        seal: str | None = None,
    ) -> EntryManifest:
        """Hold `entry` in use and return its manifest (matching `seal` when given).

        `create(problem)` runs, without the lock, when the entry is missing (`problem` is None)
        or corrupt; it must commit the entry or raise. Eviction may remove a new entry before it
        is locked, hence the few attempts.
        """
        for _ in range(5):
            lock = FileLock(entry.lock_path, shared=True)
            lock.acquire()
            try:
                manifest = entry.read_manifest(seal)
            except CacheCorruptionError as exc:
                lock.release()
                create(exc)
                continue
            if manifest is None:
                lock.release()
                create(None)
                continue
            entry.touch(ttl)
            self.holds.adopt(entry, lock)
            return manifest
        raise WandbArtifactsIOManagerError(
            f"Could not open the cache entry {entry.path}: it kept being evicted. Run eviction"
            " less aggressively (a larger --older-than-minutes)."
        )

    @contextmanager
    def using(self, entry: CacheEntry) -> Iterator[FileLock]:
        """Hold the entry in use (shared lock) so eviction leaves it alone."""
        lock = FileLock(entry.lock_path, shared=True)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def iter_entries(self) -> Iterator[CacheEntry]:
        root = self.layout.cache_dir
        if not root.is_dir():
            return
        for entity_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for project_dir in sorted(p for p in entity_dir.iterdir() if p.is_dir()):
                for name_dir in sorted(p for p in project_dir.iterdir() if p.is_dir()):
                    try:
                        children = sorted(name_dir.iterdir())
                    except FileNotFoundError:
                        continue
                    for d in children:
                        if d.is_dir() and not d.name.startswith("."):
                            yield self.entry(
                                entity_dir.name, project_dir.name, name_dir.name, d.name
                            )


def describe(entry: CacheEntry) -> dict[str, Any]:
    try:
        manifest = entry.read_manifest()
        status = "ok" if manifest is not None else "incomplete"
    except CacheCorruptionError:
        manifest, status = None, "corrupt"
    last_used, ttl = entry.last_used()
    return {
        "entity": entry.entity,
        "project": entry.project,
        "name": entry.name,
        "digest": entry.digest,
        "status": status,
        "origin": manifest.origin if manifest else None,
        "size": manifest.size if manifest else None,
        "last_used": last_used,
        "ttl_minutes": ttl,
        "path": str(entry.path),
    }
