"""Where the offline index lives on one host: one JSON file per artifact name.

``<base_dir>/dagster_wandb_io/index/<entity>/<project>/<name>.json``, updated under an exclusive
`flock` and replaced atomically, so readers never need a lock. The lock is only good within one
host (or a shared file system whose locks work across hosts): a deployment on several hosts
keeps the index in Postgres instead (index_postgres.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cache import Layout
from .errors import OfflineIndexError
from .fsutil import atomic_write_json, read_json
from .locks import FileLock

MAX_INDEX_BYTES = 1 << 26


def check_document(data: Any, where: str) -> dict[str, Any]:
    """The document's shape, as every backend stores it; an error names the fix."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("versions"), list)
        or not isinstance(data.get("aliases"), dict)
    ):
        raise OfflineIndexError(
            f"The offline index of {where} is malformed (no 'versions' list or 'aliases' map),"
            " so the versions and aliases it held cannot be trusted. Fix: move it aside, then"
            " materialize the producing asset again; it writes a fresh, signed index (cached"
            " entries are kept)."
        )
    return data


class FileIndexSlot:
    """One artifact's file, held under its exclusive lock for the length of an update."""

    def __init__(self, backend: FileIndex, path: Path) -> None:
        self.backend = backend
        self.path = path

    def load(self) -> dict[str, Any] | None:
        return self.backend.load_path(self.path)

    def save(self, document: dict[str, Any]) -> None:
        atomic_write_json(self.path, document)

    def set_aside(self) -> tuple[str, int]:
        """Move the file aside; where it went, and how many versions it or the cache shows."""
        aside = self.path.with_name(f"{self.path.name}.untrusted-{time.time_ns()}")
        os.replace(self.path, aside)
        # The cache holds one entry per version ever published, a floor when the file is too
        # damaged to count its versions.
        entity, project = self.path.parent.parent.name, self.path.parent.name
        entries = self.backend.layout.cache_dir / entity / project / self.path.stem
        numbered = len([e for e in entries.iterdir() if e.is_dir()]) if entries.is_dir() else 0
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            numbered = max(numbered, len(read_json(aside)["versions"]))
        return aside.name, numbered


class FileIndex:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def path(self, entity: str, project: str, name: str) -> Path:
        return self.layout.index_dir / entity / project / f"{name}.json"

    def where(self, entity: str, project: str, name: str) -> str:
        return f"{entity}/{project}/{name} ({self.path(entity, project, name)})"

    def load_path(self, path: Path) -> dict[str, Any] | None:
        where = f"{path.parent.parent.name}/{path.parent.name}/{path.stem} ({path})"
        try:
            if path.stat().st_size > MAX_INDEX_BYTES:
                raise ValueError(f"larger than {MAX_INDEX_BYTES} bytes")
            data = read_json(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise OfflineIndexError(
                f"The offline index file {path} is unreadable or malformed ({error}), so the"
                " versions and aliases it held cannot be trusted. Fix: move it aside, then"
                " materialize the producing asset again; it writes a fresh, signed index file"
                " (cached entries are kept)."
            ) from None
        return check_document(data, where)

    def load(self, entity: str, project: str, name: str) -> dict[str, Any] | None:
        return self.load_path(self.path(entity, project, name))

    @contextlib.contextmanager
    def updating(self, entity: str, project: str, name: str) -> Iterator[FileIndexSlot]:
        path = self.path(entity, project, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_suffix(".lock")):
            yield FileIndexSlot(self, path)

    def names(self, entity: str, project: str) -> list[str]:
        folder = self.layout.index_dir / entity / project
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json"))

    def documents(self) -> Iterator[tuple[str, str, str, dict[str, Any] | None]]:
        """Every artifact's (entity, project, name, document): what a migration reads."""
        if not self.layout.index_dir.is_dir():
            return
        for path in sorted(self.layout.index_dir.glob("*/*/*.json")):
            try:
                document = self.load_path(path)
            except OfflineIndexError:
                document = None
            yield path.parent.parent.name, path.parent.name, path.stem, document
