"""Pickle-family serialization (pickle, dill, cloudpickle, joblib) with streamed signing.

Writes stream straight to disk through a hashing writer, so no second in-memory copy of the
payload is built. For pickle, dill and cloudpickle at protocol 5 the large buffers (numpy arrays
and other `PickleBuffer` providers) are written out-of-band after the pickle stream in the same
file; on read they are read straight into their final memory while worker threads hash the
chunks, and only after the signature checks out does unpickling start.

Container layout (`output.pickle`, `output.dill`, `output.cloudpickle`)::

    [pickle stream][buffer 0]...[buffer n-1][footer JSON][footer length: u64 LE][MAGIC]

`output.joblib` is joblib's own format. Every payload has a `<payload>.sig` file beside it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import os
import pickle
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import signing
from .errors import CacheCorruptionError, ConfigurationError, SerializationError, SignatureError
from .keys import ALLOW_UNSIGNED_ENV, KEY_HELP, PRIVATE_KEY_ENV, Signer, TrustStore

ACCEPTED_SERIALIZATION_MODULES: tuple[str, ...] = ("pickle", "dill", "cloudpickle", "joblib")
PAYLOAD_FILENAMES: dict[str, str] = {
    "dill": "output.dill",
    "cloudpickle": "output.cloudpickle",
    "joblib": "output.joblib",
    "pickle": "output.pickle",
}
MAGIC = b"DWIOPK01"
_RAW_BYTES_MIN = 1 << 20
_TRAILER = struct.Struct("<Q8s")
_MAX_FOOTER = 1 << 24
# Out-of-band buffers one pickle may carry: a footer claiming more is not ours, and sizing
# millions of reads from it would cost seconds and gigabytes before the signature is checked.
_MAX_BUFFERS = 1 << 16

Logger = Callable[[str], None]


def _install_hint(module: str) -> str:
    return (
        f"Install it in this code location's environment: `pip install"
        f" 'dagster-wandb-io[{module}]'` (or `pip install {module}`)."
    )


def import_module(name: str, *, for_reading: bool) -> Any:
    if name not in ACCEPTED_SERIALIZATION_MODULES:
        raise ConfigurationError(
            f"Unknown serialization module {name!r}. Set `serialization_module.name` to one of"
            f" {list(ACCEPTED_SERIALIZATION_MODULES)}."
        )
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        what = (
            f"The artifact was serialized with {name!r}, which is not installed here."
            if for_reading
            else f"The serialization module {name!r} is not installed."
        )
        raise SerializationError(f"{what} {_install_hint(name)}") from exc


def module_version(module: Any) -> str | None:
    return getattr(module, "__version__", None)


def payload_filename(files: Iterable[str]) -> str | None:
    """The pickle-family payload among an artifact's files, in the old integration's order."""
    names = set(files)
    for filename in PAYLOAD_FILENAMES.values():
        if filename in names:
            return filename
    return None


def module_for_filename(filename: str) -> str:
    for module, name in PAYLOAD_FILENAMES.items():
        if name == filename:
            return module
    raise SerializationError(f"{filename!r} is not a pickle-family payload")


@dataclass
class WrittenPayload:
    filename: str
    signature_filename: str | None
    module: str
    module_version: str | None
    protocol: int
    size: int
    tree_xxh128: str
    md5_b64: str
    signature_md5_b64: str | None = None
    signature_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class _CloudpickledValue:
    """Carries a value joblib cannot pickle (a lambda, a local function) as cloudpickle bytes.

    It unpickles to the original value, so `joblib.load` returns what was dumped.
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (pickle.loads, (self.payload,))


def _joblib_cloudpickle() -> Any:
    try:
        return importlib.import_module("cloudpickle")
    except ImportError:
        return importlib.import_module("joblib.externals.cloudpickle")


def dump(
    obj: Any,
    module_name: str,
    parameters: Mapping[str, Any],
    dest_dir: Path,
    *,
    signer: Signer | None,
    binding: signing.Binding | None,
    log: Logger | None = None,
) -> WrittenPayload:
    """Serialize `obj` into `dest_dir/<payload>` (+ `.sig` when a signer is given)."""
    module = import_module(module_name, for_reading=False)
    params = dict(parameters)
    protocol = int(params.pop("protocol", pickle.HIGHEST_PROTOCOL))
    filename = PAYLOAD_FILENAMES[module_name]
    dest_dir.mkdir(parents=True, exist_ok=True)
    digests, extra = _write_payload(
        obj, module, module_name, dest_dir / filename, protocol, params, log
    )
    sig_name = sig_md5 = sig_size = None
    if signer is not None:
        assert binding is not None
        sig_name = filename + signing.SIGNATURE_SUFFIX
        sig_bytes = signing.sign(signer, filename, digests, binding).to_json()
        (dest_dir / sig_name).write_bytes(sig_bytes)
        sig_md5 = base64.b64encode(hashlib.md5(sig_bytes).digest()).decode()
        sig_size = len(sig_bytes)
    assert digests.md5_b64 is not None
    return WrittenPayload(
        filename=filename,
        signature_filename=sig_name,
        module=module_name,
        module_version=module_version(module),
        protocol=protocol,
        size=digests.length,
        tree_xxh128=digests.tree_xxh128,
        md5_b64=digests.md5_b64,
        signature_md5_b64=sig_md5,
        signature_size=sig_size,
        metadata=extra,
    )


def _write_payload(
    obj: Any,
    module: Any,
    module_name: str,
    path: Path,
    protocol: int,
    params: dict[str, Any],
    log: Logger | None,
) -> tuple[signing.ChunkDigests, dict[str, Any]]:
    """Write `obj` to `path` through a hashing writer; its digests, and metadata on how."""
    extra: dict[str, Any] = {}

    def attempt(value: Any) -> signing.ChunkDigests:
        with open(path, "wb", buffering=0) as raw:
            writer = signing.HashingWriter(raw)
            try:
                if module_name == "joblib":
                    module.dump(value, writer, protocol=protocol, **params)
                else:
                    _dump_container(module, module_name, value, writer, protocol, params)
            except BaseException:
                writer.digester.abort()
                raise
            return writer.digester.finish()

    try:
        try:
            digests = attempt(obj)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            if module_name != "joblib" or "pickle" not in str(exc).lower():
                raise
            # joblib pickles functions by reference only; the seed shows a lambda stored with
            # joblib, so fall back to cloudpickle-by-value for what joblib cannot handle.
            cloudpickle = _joblib_cloudpickle()
            wrapped = _CloudpickledValue(cloudpickle.dumps(obj, protocol=protocol))
            digests = attempt(wrapped)
            extra["source_joblib_cloudpickle_fallback"] = True
            if log:
                log(
                    "joblib cannot pickle this value by reference; it was stored through"
                    " cloudpickle inside the joblib payload."
                )
    except SerializationError:
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:
        path.unlink(missing_ok=True)
        others = [m for m in ACCEPTED_SERIALIZATION_MODULES if m != module_name]
        raise SerializationError(
            f"Serializing the output with {module_name!r} failed: {exc!r}. Check the"
            " `serialization_module.parameters` (they are passed to the module's dump"
            f" function) and that the value is supported by {module_name}; otherwise set"
            f" `serialization_module.name` to one of {others}."
        ) from exc
    return digests, extra


def _dump_container(
    module: Any,
    module_name: str,
    obj: Any,
    writer: signing.HashingWriter,
    protocol: int,
    params: dict[str, Any],
) -> None:
    buffers: list[pickle.PickleBuffer] = []
    kwargs = dict(params)
    raw_bytes = type(obj) is bytes and len(obj) >= _RAW_BYTES_MIN
    if raw_bytes:
        # A serialized model (ONNX, ...) returned as bytes: store the bytes themselves, so a
        # read is one allocation, as with pickle, instead of a buffer plus an unpickled copy.
        buffers.append(pickle.PickleBuffer(obj))
    else:
        if protocol >= 5 and "buffer_callback" not in kwargs:
            kwargs["buffer_callback"] = buffers.append
        module.dump(obj, writer, protocol=protocol, **kwargs)
    stream_length = writer.bytes_written
    lengths = []
    for buf in buffers:
        with buf.raw() as view:
            writer.write(view)
            lengths.append(view.nbytes)
    footer = json.dumps(
        {
            "format": 1,
            "module": module_name,
            "protocol": protocol,
            "stream_length": stream_length,
            "buffers": lengths,
            "raw_bytes": raw_bytes,
        }
    ).encode()
    writer.write(footer)
    writer.write(_TRAILER.pack(len(footer), MAGIC))


def _alloc(n: int) -> Any:
    # np.empty skips zero-filling, so pages are touched once, by the read itself.
    try:
        import numpy as np
    except ImportError:
        return bytearray(n)
    return np.empty(n, dtype=np.uint8)


def _layout(f: io.RawIOBase, size: int) -> tuple[list[int], dict[str, Any] | None]:
    """Segment lengths of the file. Footer values are only used to size reads: nothing is
    unpickled before the signature over the whole file has been checked."""
    if size < _TRAILER.size:
        return [size], None
    f.seek(size - _TRAILER.size)
    footer_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
    f.seek(0)
    if magic != MAGIC or footer_len > min(_MAX_FOOTER, size - _TRAILER.size):
        return [size], None
    f.seek(size - _TRAILER.size - footer_len)
    try:
        footer = json.loads(f.read(footer_len))
        stream_length = int(footer["stream_length"])
        if len(footer["buffers"]) > _MAX_BUFFERS:
            raise ValueError("too many buffers")
        buffers = [int(n) for n in footer["buffers"]]
    except (ValueError, KeyError, TypeError):
        f.seek(0)
        return [size], None
    f.seek(0)
    segments = [stream_length, *buffers, footer_len + _TRAILER.size]
    if any(n < 0 for n in segments) or sum(segments) != size:
        return [size], None
    return segments, footer


def _read_segments(
    f: io.RawIOBase, segments: list[int], digester: signing.ChunkDigester
) -> list[Any]:
    """Read the file into one buffer per segment while workers hash fixed-size chunks."""
    dests = [_alloc(n) for n in segments]
    views = [memoryview(d).cast("B") for d in dests]
    chunk = digester.chunk_size
    seg, seg_off = 0, 0
    total = sum(segments)
    done = 0
    while done < total:
        parts: list[memoryview] = []
        want = min(chunk, total - done)
        while want:
            while seg_off == segments[seg]:
                seg, seg_off = seg + 1, 0
            n = min(want, segments[seg] - seg_off)
            view = views[seg][seg_off : seg_off + n]
            got = 0
            while got < n:
                r = f.readinto(view[got:])
                if not r:
                    raise CacheCorruptionError("payload file is shorter than its layout")
                got += r
            parts.append(view)
            seg_off += n
            want -= n
            done += n
        digester.submit_parts(parts)
    return dests


def _read_whole_segments(
    f: io.RawIOBase, segments: list[int], digester: signing.ChunkDigester
) -> list[Any]:
    """Read each segment into a `bytes` object (one allocation each), then hash the chunks."""
    data = [signing.read_exact(f, n) if n else b"" for n in segments]  # type: ignore[arg-type]
    chunk = digester.chunk_size
    parts: list[memoryview] = []
    need = chunk
    for segment in data:
        view = memoryview(segment)
        pos = 0
        while pos < len(view):
            n = min(need, len(view) - pos)
            parts.append(view[pos : pos + n])
            pos += n
            need -= n
            if need == 0:
                digester.submit_parts(parts)
                parts, need = [], chunk
    if parts:
        digester.submit_parts(parts)
    return data


class _MemoryReader(io.RawIOBase):
    """A seekable read-only file over a verified in-memory buffer (for joblib.load)."""

    def __init__(self, data: Any) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        n = min(len(out), len(self._view) - self._pos)
        out[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def load(
    path: Path,
    *,
    artifact: tuple[str, str, str],
    trust: TrustStore | None,
    allow_unsigned: bool,
    expected_xxh128: str | None = None,
    log: Logger | None = None,
) -> Any:
    """Verify and deserialize the payload file of ``artifact`` (entity, project, name). Never
    unpickles unverified bytes: a signature that is present is always checked, and a missing
    one is accepted only where the deployment allows unsigned pickles."""
    filename = path.name
    where = "/".join(artifact)
    module_name = module_for_filename(filename)
    signature = _signature_to_check(path, where, trust, allow_unsigned)
    module = import_module(module_name, for_reading=True)
    buffers, footer, digests = _read_payload(path, where, signature)
    if expected_xxh128 is not None and digests.tree_xxh128 != expected_xxh128:
        raise CacheCorruptionError(f"{filename} does not match its recorded checksum")
    if signature is not None:
        assert trust is not None
        signing.verify(trust, signature, filename, digests, artifact)
    elif log is not None:
        log(
            f"Loading the unsigned {filename!r} of {where} because this deployment sets"
            f" {ALLOW_UNSIGNED_ENV}."
        )
    return _deserialize(module, module_name, filename, buffers, footer)


def _signature_to_check(
    path: Path, where: str, trust: TrustStore | None, allow_unsigned: bool
) -> signing.Signature | None:
    """The payload's signature; None only where unsigned payloads are allowed."""
    filename = path.name
    sig_path = path.with_name(filename + signing.SIGNATURE_SUFFIX)
    signature = signing.Signature.from_file(sig_path) if sig_path.exists() else None
    if signature is None and not allow_unsigned:
        raise SignatureError(
            f"The payload {filename!r} of {where} is not signed, so it is not loaded (pickle can"
            " run arbitrary code). Re-materialize it with this integration and the producing"
            f" team's {PRIVATE_KEY_ENV} set, or, only if this deployment trusts every source,"
            f" set {ALLOW_UNSIGNED_ENV}=1 in its environment."
        )
    if signature is not None and trust is None:
        raise ConfigurationError(
            f"The payload {filename!r} of {where} is signed but no trust file is configured to"
            f" verify it. {KEY_HELP}."
        )
    return signature


def _read_payload(
    path: Path, where: str, signature: signing.Signature | None
) -> tuple[list[Any], dict[str, Any] | None, signing.ChunkDigests]:
    """The payload's segments read into memory and hashed, not yet trusted: its buffers,
    footer and digests."""
    digester = signing.ChunkDigester()
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if signature is not None and signature.length != size:
            # Refused before a byte of the payload is read.
            raise SignatureError(
                f"The payload {path.name!r} of {where} is {size} bytes but its signature covers"
                f" {signature.length}: it was modified or replaced after signing. Do not load"
                " it; re-materialize the upstream asset from a trusted run."
            )
        segments, footer = _layout(f, size)
        reader = _read_whole_segments if _holds_raw_bytes(footer) else _read_segments
        try:
            buffers = reader(f, segments, digester)
        except BaseException:
            digester.abort()
            raise
    return buffers, footer, digester.finish()


def _holds_raw_bytes(footer: dict[str, Any] | None) -> bool:
    return bool(footer and footer.get("raw_bytes"))


def _deserialize(
    module: Any,
    module_name: str,
    filename: str,
    buffers: list[Any],
    footer: dict[str, Any] | None,
) -> Any:
    """Unpickle verified buffers (a raw-bytes payload is its second buffer as is)."""
    if _holds_raw_bytes(footer):
        return buffers[1]
    try:
        if footer is None:
            if module_name == "joblib":
                return module.load(io.BufferedReader(_MemoryReader(buffers[0])))
            return module.loads(memoryview(buffers[0]).cast("B"))
        stream = memoryview(buffers[0]).cast("B")
        oob = buffers[1:-1]
        if module_name == "pickle" or module_name == "cloudpickle":
            return pickle.loads(stream, buffers=oob)
        return module.loads(stream, buffers=oob)
    except Exception as exc:
        raise SerializationError(
            f"Deserializing {filename!r} with {module_name} failed: {exc!r}. The classes and"
            " functions it references must be importable here, with compatible versions of"
            " the libraries that produced it."
        ) from exc
