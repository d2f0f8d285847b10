"""Atomic file-system helpers for the shared volume."""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` so that readers see either the old or the new file, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


# A manifest of 100,000 files is about 20 MiB; anything past this was not written by this
# package (the volume is shared: a link to /dev/zero once took a worker to a MemoryError).
MAX_JSON_BYTES = 64 << 20


class UnreadableFile(ValueError):
    """A JSON file of the shared volume that is no regular file, or too large to be one of
    ours; callers treat it as any unreadable JSON (corrupt: set aside or fetched again)."""


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON in `path`, read only if it is a regular file of at most `limit` bytes.

    O_NONBLOCK: opening a FIFO put in the file's place returns at once instead of waiting for
    a writer that never comes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFile(f"{path} is not a regular file")
        return json.loads(read_capped(f, limit, str(path)))


def read_capped(body: Any, limit: int, what: str) -> bytes:
    """At most `limit` bytes of a stream (an S3 object's body), refusing a longer one."""
    data = body.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"{what} is over {limit >> 20} MiB")
    return data


def link_or_copy(src: Path, dst: Path) -> int:
    """Hard-link `src` to `dst` (same volume: no bytes written); copy if links are unsupported.

    Returns the number of bytes written.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return 0
    except OSError:
        shutil.copyfile(src, dst)
        return os.path.getsize(dst)


def remove_tree(path: Path) -> None:
    """Delete a directory by first renaming it away, so no reader sees a half-deleted tree."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)
