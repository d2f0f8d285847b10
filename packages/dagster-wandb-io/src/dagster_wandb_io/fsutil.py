"""Atomic file-system helpers for the shared volume."""

from __future__ import annotations

import json
import os
import shutil
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


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


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
