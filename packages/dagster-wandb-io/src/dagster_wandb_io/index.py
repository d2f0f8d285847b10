"""The offline index: ``entity/project/name:alias|version -> digest``.

One JSON file per artifact name under ``<base_dir>/dagster_wandb_io/index/<entity>/<project>/``,
updated under an exclusive lock and replaced atomically, so readers never need a lock. Versions
are local (``v0``, ``v1``, ...) and independent of the versions W&B assigns when the offline
runs are synced later. Like W&B, logging content whose digest already exists reuses that version
and only moves the aliases.

Every file is signed by the team that owns the entity: its versions, its aliases and a counter
that only grows. An edited file (an alias rolled back to an older version, a version pointed at
other content) fails the signature. A whole older file put back is signed, so the counter is
what catches it, in any process that has already seen a newer file: the README's threat model
says so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Layout
from .errors import OfflineIndexError, SignatureError
from .fsutil import atomic_write_json, read_json
from .keys import ALLOW_UNSIGNED_ENV, Signer, TrustStore
from .locks import FileLock

_VERSION = re.compile(r"v(\d+)")
ALIAS_MAP_SCHEME = "dagster-wandb-io/alias-map-v1"
MAX_INDEX_BYTES = 1 << 26

# The newest counter this process has seen per artifact: a signed file older than that is a
# rollback.
_seen_lock = threading.Lock()
_seen_counters: dict[tuple[str, str, str], int] = {}


def _signed_message(entity: str, project: str, name: str, data: dict[str, Any]) -> bytes:
    body = {
        "entity": entity,
        "project": project,
        "name": name,
        "counter": data["counter"],
        # Each version with the runs that produced it: the index is where a version is bound
        # to its producing run.
        "versions": [[v["version"], v["digest"], v.get("info") or {}] for v in data["versions"]],
        "aliases": data["aliases"],
        "next_version": data.get("next_version", len(data["versions"])),
    }
    return (
        f"{ALIAS_MAP_SCHEME}\n".encode()
        + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    )


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
            if path.stat().st_size > MAX_INDEX_BYTES:
                raise ValueError(f"larger than {MAX_INDEX_BYTES} bytes")
            data = read_json(path)
            if not isinstance(data.get("versions"), list) or not isinstance(
                data.get("aliases"), dict
            ):
                raise ValueError("no 'versions' list or 'aliases' map")
            return data
        except FileNotFoundError:
            return {"versions": [], "aliases": {}, "counter": 0}
        except (OSError, ValueError, AttributeError) as error:
            raise OfflineIndexError(
                f"The offline index file {path} is unreadable or malformed ({error}), so the"
                " versions and aliases it held cannot be trusted. Fix: move it aside, then"
                " materialize the producing asset again; it writes a fresh, signed index file"
                " (cached entries are kept)."
            ) from None

    def _verify(
        self,
        entity: str,
        project: str,
        name: str,
        data: dict[str, Any],
        trust: TrustStore | None,
        allow_unsigned: bool,
    ) -> None:
        path = self._path(entity, project, name)
        where = f"the offline index of {entity}/{project}/{name} ({path})"
        signature = data.get("signature")
        if signature is None:
            if allow_unsigned:
                return
            raise SignatureError(
                f"{where} is not signed: it predates per-team keys or was edited. Its aliases"
                " cannot be trusted. Materialize the producing asset again to re-sign it (or,"
                f" only where every source is trusted, set {ALLOW_UNSIGNED_ENV}=1)."
            )
        if trust is None:
            raise SignatureError(f"{where} is signed but no trust file is configured.")
        try:
            team = str(signature["team"])
            raw = base64.b64decode(signature["ed25519"], validate=True)
            message = _signed_message(entity, project, name, data)
            counter = int(data["counter"])
        except (KeyError, TypeError, ValueError) as error:
            raise SignatureError(f"{where} has a malformed signature ({error}).") from None
        trust.verify(team, raw, message, what=where)
        trust.check_owner(team, entity, what=where)
        key = (entity, project, name)
        with _seen_lock:
            newest = _seen_counters.get(key, 0)
            if counter < newest:
                raise SignatureError(
                    f"{where} was rolled back: its counter is {counter}, but this process has"
                    f" already read counter {newest}. An older signed copy of the file was put"
                    " back. Do not trust its aliases; restore the newest file or materialize"
                    " the producing asset again."
                )
            _seen_counters[key] = counter

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
        signer: Signer | None,
        trust: TrustStore | None,
        info: dict[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> IndexedVersion:
        path = self._path(entity, project, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_suffix(".lock")):
            data = self._trusted_or_set_aside(entity, project, name, signer, trust, log)
            versions: list[dict[str, Any]] = data["versions"]
            found = next((v for v in versions if v["digest"] == digest), None)
            if found is None:
                number = int(data.get("next_version", len(versions)))
                data["next_version"] = number + 1
                found = {
                    "version": f"v{number}",
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
            # Strictly growing, and never below the clock, so a file rewritten from scratch
            # still counts as newer than any copy readers have seen.
            data["counter"] = max(int(data.get("counter", 0)) + 1, time.time_ns())
            data.pop("signature", None)
            if signer is not None:
                data["signature"] = {
                    "team": signer.team,
                    "key_id": signer.key_id,
                    "ed25519": base64.b64encode(
                        signer.sign(_signed_message(entity, project, name, data))
                    ).decode(),
                }
            atomic_write_json(path, data)
        return self._version(name, found, alias_map)

    def _trusted_or_set_aside(
        self,
        entity: str,
        project: str,
        name: str,
        signer: Signer | None,
        trust: TrustStore | None,
        log: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """The owner's current file, verified like any reader's. One that fails is moved
        aside, not re-signed: signing it would make an attacker's edit the owner's word."""
        path = self._path(entity, project, name)
        if not path.exists():
            return {"versions": [], "aliases": {}, "counter": 0}
        try:
            data = self._load(path)
            self._verify(entity, project, name, data, trust, allow_unsigned=signer is None)
            return data
        except (OfflineIndexError, SignatureError) as problem:
            aside = path.with_name(f"{path.name}.untrusted-{time.time_ns()}")
            os.replace(path, aside)
            if log is not None:
                log(f"{problem} It was moved to {aside.name}; a fresh, signed index starts now.")
            # The cache holds one entry per version ever published, a floor when the file is
            # too damaged to count its versions.
            entries = self.layout.cache_dir / entity / project / name
            numbered = len([e for e in entries.iterdir() if e.is_dir()]) if entries.is_dir() else 0
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                numbered = max(numbered, len(read_json(aside)["versions"]))
            # Version names are never reused, so no reader takes new content for an old version.
            return {"versions": [], "aliases": {}, "counter": 0, "next_version": numbered}

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

    def resolve(
        self,
        entity: str,
        project: str,
        name: str,
        ref: str,
        *,
        trust: TrustStore | None,
        allow_unsigned: bool,
    ) -> IndexedVersion | None:
        path = self._path(entity, project, name)
        if not path.exists():
            return None
        data = self._load(path)
        self._verify(entity, project, name, data, trust, allow_unsigned)
        alias_map: dict[str, str] = data["aliases"]
        version = ref if _VERSION.fullmatch(ref) else alias_map.get(ref)
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
