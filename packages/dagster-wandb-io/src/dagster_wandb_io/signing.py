"""Ed25519 signatures for pickle-family payloads, bound to the artifact and to its producer.

The payload is hashed in fixed-size chunks (SHA-256 per chunk) and the producer team's Ed25519
key signs a header (artifact entity, project and name, producing team and runs, length) followed
by the ordered chunk digests. Chunking lets worker threads hash while the main thread writes or
reads the file (hashlib releases the GIL), so signing adds little wall time, and the signature
still covers every byte. Every read path verifies the signature *before* any unpickling.

The same pass computes a tree xxh128 of the file: a cheap integrity check the cache uses to
detect accidental corruption without re-reading the file with MD5.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from .errors import SignatureError
from .keys import Signer, TrustStore

SCHEME = "dagster-wandb-io/ed25519-chunked-v2"
# Payloads of releases before per-team keys: refused, with the command that re-signs them.
LEGACY_HMAC_SCHEME = "dagster-wandb-io/hmac-sha256-chunked-v1"
MAX_SIGNATURE_BYTES = 1 << 16
CHUNK_SIZE = 1 << 20
SIGNATURE_SUFFIX = ".sig"
# Bounds memory held by chunks waiting to be hashed (copies of small writes only).
_MAX_IN_FLIGHT = 8

_pool_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}
_pool_pid: int | None = None


def _hash_pool(kind: str = "chunks") -> ThreadPoolExecutor:
    # Chunk hashes run on two workers (the platform's 2-core budget); MD5, a sequential hash,
    # on one worker so chunks are fed in order. Recreated after fork.
    global _pool_pid
    with _pool_lock:
        if _pool_pid != os.getpid():
            _pools.clear()
            _pool_pid = os.getpid()
        pool = _pools.get(kind)
        if pool is None:
            workers = 1 if kind == "md5" else 2
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"dwio-{kind}")
            _pools[kind] = pool
        return pool


def _md5_update(md5: Any, parts: Sequence[memoryview]) -> None:
    for part in parts:
        md5.update(part)


def _hash_parts(parts: Sequence[memoryview]) -> tuple[bytes, bytes]:
    sha = hashlib.sha256()
    xxh = xxhash.xxh3_128()
    for part in parts:
        sha.update(part)
        xxh.update(part)
    return sha.digest(), xxh.digest()


@dataclass(frozen=True)
class ChunkDigests:
    length: int
    chunk_size: int
    sha256: tuple[bytes, ...]
    xxh128: tuple[bytes, ...]
    md5_b64: str | None = None

    @property
    def tree_xxh128(self) -> str:
        return tree_xxh128_from_chunks(self.xxh128, self.length)


def tree_xxh128_from_chunks(chunks: Iterable[bytes], length: int) -> str:
    h = xxhash.xxh3_128()
    for c in chunks:
        h.update(c)
    h.update(str(length).encode())
    return h.hexdigest()


class ChunkDigester:
    """Accepts a byte stream and hashes fixed-size chunks on worker threads, in order."""

    def __init__(self, chunk_size: int = CHUNK_SIZE, *, md5: bool = False) -> None:
        self.chunk_size = chunk_size
        self._pool = _hash_pool()
        self._futures: deque[Future[tuple[bytes, bytes]]] = deque()
        self._done: list[tuple[bytes, bytes]] = []
        self._pending = bytearray()
        self._length = 0
        # W&B's manifest needs the file MD5; computing it here, while the file is written,
        # avoids wandb re-reading (and mmap-ing) the whole payload afterwards.
        self._md5 = hashlib.md5() if md5 else None
        self._md5_pool = _hash_pool("md5") if md5 else None
        self._md5_futures: deque[Future[None]] = deque()

    def _submit(self, parts: list[memoryview]) -> None:
        if len(self._futures) >= _MAX_IN_FLIGHT:
            self._done.append(self._futures.popleft().result())
        self._futures.append(self._pool.submit(_hash_parts, parts))
        if self._md5 is not None and self._md5_pool is not None:
            if len(self._md5_futures) >= _MAX_IN_FLIGHT:
                self._md5_futures.popleft().result()
            self._md5_futures.append(self._md5_pool.submit(_md5_update, self._md5, parts))

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        n = len(view)
        if n == 0:
            return
        self._length += n
        pos = 0
        if self._pending:
            take = min(self.chunk_size - len(self._pending), n)
            self._pending += view[:take]
            pos = take
            if len(self._pending) == self.chunk_size:
                chunk, self._pending = self._pending, bytearray()
                self._submit([memoryview(chunk)])
        # Whole chunks are hashed in place (zero copy); the caller's buffer outlives the hash
        # because finish() waits for every future before returning.
        while n - pos >= self.chunk_size:
            self._submit([view[pos : pos + self.chunk_size]])
            pos += self.chunk_size
        if pos < n:
            self._pending += view[pos:]

    def submit_parts(self, parts: list[memoryview]) -> None:
        """Hash one chunk made of several contiguous views (used by the reader)."""
        self._length += sum(len(p) for p in parts)
        self._submit(parts)

    def finish(self) -> ChunkDigests:
        if self._pending:
            chunk, self._pending = self._pending, bytearray()
            self._submit([memoryview(chunk)])
        while self._futures:
            self._done.append(self._futures.popleft().result())
        while self._md5_futures:
            self._md5_futures.popleft().result()
        sha = tuple(d[0] for d in self._done)
        xxh = tuple(d[1] for d in self._done)
        md5 = base64.b64encode(self._md5.digest()).decode() if self._md5 is not None else None
        return ChunkDigests(self._length, self.chunk_size, sha, xxh, md5)

    def abort(self) -> None:
        for queue in (self._futures, self._md5_futures):
            for f in queue:
                f.cancel()
            for f in queue:
                if not f.cancelled():
                    f.exception()
            queue.clear()


class HashingWriter:
    """A binary file wrapper that hashes everything written through it."""

    def __init__(self, raw: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        self._raw = raw
        self.digester = ChunkDigester(chunk_size, md5=True)
        self.bytes_written = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        # No buffer of our own: pickle already writes whole 64 KiB frames (or, below protocol
        # 4, its whole output at once) and hands large buffers over as views, uncopied.
        self._raw.write(view)
        self.digester.update(view)
        self.bytes_written += n
        return n

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.bytes_written

    @property
    def closed(self) -> bool:
        return self._raw.closed


@dataclass(frozen=True)
class Binding:
    """What a signature says the payload is: which artifact, and which team made it.

    The reader compares the artifact with what it asked for, so a validly signed payload copied
    over another artifact (another team's included) is refused. The producing run is not in
    here but in the signed index (index.py): the same content signed twice gives the same
    bytes, so it keeps one digest and one version, as in W&B.
    """

    entity: str
    project: str
    name: str
    team: str


@dataclass(frozen=True)
class Signature:
    scheme: str
    payload: str
    length: int
    chunk_size: int
    binding: Binding
    key_id: str
    ed25519: str

    def _header(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "payload": self.payload,
            "length": self.length,
            "chunk_size": self.chunk_size,
            **asdict(self.binding),
            "key_id": self.key_id,
        }

    def message(self, digests: ChunkDigests) -> bytes:
        header = json.dumps(self._header(), sort_keys=True, separators=(",", ":"))
        return b"".join([SCHEME.encode(), b"\n", header.encode(), b"\n", *digests.sha256])

    def to_json(self) -> bytes:
        return json.dumps(
            {**self._header(), "ed25519": self.ed25519}, indent=1, sort_keys=True
        ).encode()

    @classmethod
    def from_file(cls, path: Path) -> Signature:
        try:
            if path.stat().st_size > MAX_SIGNATURE_BYTES:
                raise ValueError(f"larger than {MAX_SIGNATURE_BYTES} bytes")
            data = json.loads(path.read_bytes())
            if data.get("scheme") == LEGACY_HMAC_SCHEME:
                raise SignatureError(
                    f"{path.name} carries the retired shared-key HMAC signature, which any team"
                    " could forge, so it is no longer accepted. Re-sign it by materializing the"
                    " producing asset again (`dagster asset materialize --select <asset>` in the"
                    " producer's code location, or Materialize in the UI)."
                )
            return cls(
                scheme=str(data["scheme"]),
                payload=str(data["payload"]),
                length=int(data["length"]),
                chunk_size=int(data["chunk_size"]),
                binding=Binding(**{f: str(data[f]) for f in Binding.__dataclass_fields__}),
                key_id=str(data["key_id"]),
                ed25519=str(data["ed25519"]),
            )
        except SignatureError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SignatureError(
                f"The signature file {path.name} is unreadable or malformed ({exc}). The"
                " artifact may have been tampered with; re-materialize it from a trusted run."
            ) from exc


def sign(signer: Signer, payload: str, digests: ChunkDigests, binding: Binding) -> Signature:
    unsigned = Signature(
        scheme=SCHEME,
        payload=payload,
        length=digests.length,
        chunk_size=digests.chunk_size,
        binding=binding,
        key_id=signer.key_id,
        ed25519="",
    )
    signature = base64.b64encode(signer.sign(unsigned.message(digests))).decode()
    return replace(unsigned, ed25519=signature)


def verify(
    trust: TrustStore,
    signature: Signature,
    payload: str,
    digests: ChunkDigests,
    expected: tuple[str, str, str],
) -> None:
    """Raise unless ``signature`` is a valid signature of these bytes, as artifact ``expected``
    (entity, project, name), by the team that owns its entity."""
    entity, project, name = expected
    where = f"{entity}/{project}/{name}"
    fix = "Do not load it; re-materialize the upstream asset from a trusted run."
    if signature.scheme != SCHEME:
        raise SignatureError(
            f"The payload {payload!r} of {where} has an unknown signature scheme"
            f" {signature.scheme!r}. {fix}"
        )
    if signature.payload != payload:
        raise SignatureError(
            f"The signature of {payload!r} in {where} was made for {signature.payload!r}: the"
            f" signature file was swapped or renamed. {fix}"
        )
    bound = signature.binding
    if (bound.entity, bound.project, bound.name) != expected:
        raise SignatureError(
            f"The payload read as {where} was signed as"
            f" {bound.entity}/{bound.project}/{bound.name}: it was copied over this artifact"
            f" (a replay). {fix}"
        )
    if signature.length != digests.length or signature.chunk_size != digests.chunk_size:
        raise SignatureError(
            f"The payload {payload!r} of {where} is {digests.length} bytes but its signature"
            f" covers {signature.length} bytes: it was modified after signing. {fix}"
        )
    try:
        raw = base64.b64decode(signature.ed25519, validate=True)
    except ValueError:
        raise SignatureError(f"The signature of {where} is not base64. {fix}") from None
    what = f"the payload {payload!r} of {where}"
    trust.verify(bound.team, raw, signature.message(digests), what=what)
    trust.check_owner(bound.team, entity, what=what)


def read_exact(f: BinaryIO, n: int) -> bytes:
    """Read `n` bytes unless EOF comes first; chunk boundaries must not depend on short reads."""
    parts = []
    remaining = n
    while remaining:
        block = f.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return parts[0] if len(parts) == 1 else b"".join(parts)
