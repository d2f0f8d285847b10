"""The offline index: ``entity/project/name:alias|version -> digest``.

One JSON file per artifact name under ``<base_dir>/dagster_wandb_io/index/<entity>/<project>/``,
updated under an exclusive lock and replaced atomically, so readers never need a lock. Versions
are local (``v0``, ``v1``, ...) and independent of the versions W&B assigns when the offline
runs are synced later. Like W&B, logging content whose digest already exists reuses that version
and only moves the aliases.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Layout
from .fsutil import atomic_write_json, read_json
from .locks import FileLock

_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class IndexedVersion:
    name: str
    version: str
    digest: str
    type: str
    aliases: tuple[str, ...]
    created_at: float
    size: int
    info: dict[str, Any]


class OfflineIndex:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def _path(self, entity: str, project: str, name: str) -> Path:
        return self.layout.index_dir / entity / project / f"{name}.json"

    def _load(self, path: Path) -> dict[str, Any]:
        try:
            return read_json(path)
        except FileNotFoundError:
            return {"versions": [], "aliases": {}}

    def record(
        self,
        entity: str,
        project: str,
        name: str,
        *,
        digest: str,
        type: str,
        size: int,
        aliases: list[str],
        info: dict[str, Any] | None = None,
    ) -> IndexedVersion:
        path = self._path(entity, project, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_suffix(".lock")):
            data = self._load(path)
            versions: list[dict[str, Any]] = data["versions"]
            found = next((v for v in versions if v["digest"] == digest), None)
            if found is None:
                found = {
                    "version": f"v{len(versions)}",
                    "digest": digest,
                    "type": type,
                    "size": size,
                    "created_at": time.time(),
                    "info": info or {},
                }
                versions.append(found)
            alias_map: dict[str, str] = data["aliases"]
            for alias in aliases:
                alias_map[alias] = found["version"]
            atomic_write_json(path, data)
        return self._version(name, found, alias_map)

    @staticmethod
    def _version(name: str, v: dict[str, Any], alias_map: dict[str, str]) -> IndexedVersion:
        return IndexedVersion(
            name=name,
            version=v["version"],
            digest=v["digest"],
            type=v["type"],
            aliases=tuple(sorted(a for a, ver in alias_map.items() if ver == v["version"])),
            created_at=float(v.get("created_at", 0.0)),
            size=int(v.get("size", 0)),
            info=dict(v.get("info") or {}),
        )

    def resolve(self, entity: str, project: str, name: str, ref: str) -> IndexedVersion | None:
        data = self._load(self._path(entity, project, name))
        alias_map: dict[str, str] = data["aliases"]
        version = ref if _VERSION.match(ref) else alias_map.get(ref)
        for v in data["versions"]:
            if v["version"] == version:
                return self._version(name, v, alias_map)
        return None

    def names(self, entity: str, project: str) -> list[str]:
        d = self.layout.index_dir / entity / project
        if not d.is_dir():
            return []
        return sorted(p.stem for p in d.glob("*.json"))

    def refs(self, entity: str, project: str, name: str) -> list[str]:
        data = self._load(self._path(entity, project, name))
        return [v["version"] for v in data["versions"]] + sorted(data["aliases"])

    def digests(self) -> set[str]:
        out: set[str] = set()
        if not self.layout.index_dir.is_dir():
            return out
        for path in self.layout.index_dir.glob("*/*/*.json"):
            try:
                out.update(v["digest"] for v in read_json(path)["versions"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out
