"""The offline index: ``entity/project/name:alias|version -> digest``.

One signed document per artifact name, kept by a backend: a JSON file per name on the host's
cache volume (index_files.py), or a row per name in Postgres when hosts share the index
(index_postgres.py). Each update holds the backend's lock (a `flock`, or the row's lock in one
transaction) from reading the document to writing the new one. Versions are local (``v0``,
``v1``, ...) and independent of the versions W&B assigns when the offline runs are synced later.
Like W&B, logging content whose digest already exists reuses that version and only moves the
aliases; a write that claims its run's publication (``claim_run``) finds an earlier one of the
same run and name in the same update, and changes nothing.

Every document is signed by the team that owns the entity: its versions, its aliases and a
counter that only grows. An edited document (an alias rolled back to an older version, a version
pointed at other content) fails the signature. A whole older document put back is signed, so the
counter is what catches it, in any process that has already seen a newer one: the README's
threat model says so.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .cache import Layout
from .errors import OfflineIndexError, SignatureError
from .index_files import FileIndex
from .keys import ALLOW_UNSIGNED_ENV, Signer, TrustStore
from .naming import run_alias

_VERSION = re.compile(r"v(\d+)")
ALIAS_MAP_SCHEME = "dagster-wandb-io/alias-map-v1"

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
    # Set by `record` with `claim_run`: the run had already published this name, so this is
    # that earlier version and the update changed nothing.
    claimed_earlier: bool = False


class IndexSlot(Protocol):
    """One artifact's document, held under the backend's lock for one update."""

    def load(self) -> dict[str, Any] | None: ...
    def save(self, document: dict[str, Any]) -> None: ...
    def set_aside(self) -> tuple[str, int]: ...


class IndexBackend(Protocol):
    def where(self, entity: str, project: str, name: str) -> str: ...
    def load(self, entity: str, project: str, name: str) -> dict[str, Any] | None: ...
    def updating(
        self, entity: str, project: str, name: str
    ) -> contextlib.AbstractContextManager[IndexSlot]: ...
    def names(self, entity: str, project: str) -> list[str]: ...


def published_by(info: dict[str, Any], dagster_run_id: str) -> bool:
    """Whether this Dagster run published the version: the run that created it, or a later run
    that published the same content (the version is reused, recorded in `dagster_run_ids`)."""
    return info.get("dagster_run_id") == dagster_run_id or dagster_run_id in (
        info.get("dagster_run_ids") or []
    )


def _empty() -> dict[str, Any]:
    return {"versions": [], "aliases": {}, "counter": 0}


class OfflineIndex:
    def __init__(self, layout: Layout, backend: IndexBackend | None = None) -> None:
        self.layout = layout
        self.backend: IndexBackend = backend or FileIndex(layout)

    def _load(self, entity: str, project: str, name: str) -> dict[str, Any]:
        return self.backend.load(entity, project, name) or _empty()

    def verify(
        self,
        entity: str,
        project: str,
        name: str,
        data: dict[str, Any],
        trust: TrustStore | None,
        allow_unsigned: bool,
    ) -> None:
        where = f"the offline index of {self.backend.where(entity, project, name)}"
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
        claim_run: str | None = None,
    ) -> IndexedVersion:
        """Add (or reuse) the version of `digest` and move `aliases` to it, in one update.

        `claim_run` (a Dagster run id): if that run already published this name, return its
        version, marked `claimed_earlier`, and change nothing."""
        with self.backend.updating(entity, project, name) as slot:
            data = self._trusted_or_set_aside(slot, entity, project, name, signer, trust, log)
            alias_map: dict[str, str] = data["aliases"]
            if claim_run is not None:
                earlier = _published_in(data, claim_run)
                if earlier is not None:
                    found = self._version(name, earlier, alias_map)
                    return dataclasses.replace(found, claimed_earlier=True)
            found = _version_of(data, digest, type=type, size=size, info=info)
            found_info = found.setdefault("info", {})
            if info and info.get("files_seal") and not found_info.get("files_seal"):
                # A version indexed before seals gains one when its content is written again.
                found_info["files_seal"] = info["files_seal"]
            if claim_run is not None and not published_by(found_info, claim_run):
                found_info.setdefault("dagster_run_ids", []).append(claim_run)
            for alias in aliases:
                alias_map[alias] = found["version"]
            # Strictly growing, and never below the clock, so a document rewritten from scratch
            # still counts as newer than any copy readers have seen.
            data["counter"] = max(int(data.get("counter", 0)) + 1, time.time_ns())
            _sign(data, signer, entity, project, name)
            slot.save(data)
        return self._version(name, found, alias_map)

    def _trusted_or_set_aside(
        self,
        slot: IndexSlot,
        entity: str,
        project: str,
        name: str,
        signer: Signer | None,
        trust: TrustStore | None,
        log: Callable[[str], None] | None,
    ) -> dict[str, Any]:
        """The owner's current document, verified like any reader's. One that fails is moved
        aside, not re-signed: signing it would make an attacker's edit the owner's word."""
        try:
            data = slot.load()
            if data is None:
                return _empty()
            self.verify(entity, project, name, data, trust, allow_unsigned=signer is None)
            return data
        except (OfflineIndexError, SignatureError) as problem:
            aside, numbered = slot.set_aside()
            if log is not None:
                log(f"{problem} It was moved to {aside}; a fresh, signed index starts now.")
            # Version names are never reused, so no reader takes new content for an old version.
            return {**_empty(), "next_version": numbered}

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
        data = self.backend.load(entity, project, name)
        if data is None:
            return None
        self.verify(entity, project, name, data, trust, allow_unsigned)
        alias_map: dict[str, str] = data["aliases"]
        version = ref if _VERSION.fullmatch(ref) else alias_map.get(ref)
        for v in data["versions"]:
            if v["version"] == version:
                return self._version(name, v, alias_map)
        return None

    def names(self, entity: str, project: str) -> list[str]:
        return self.backend.names(entity, project)

    def refs(self, entity: str, project: str, name: str) -> list[str]:
        data = self._load(entity, project, name)
        return [v["version"] for v in data["versions"]] + sorted(data["aliases"])


def _published_in(data: dict[str, Any], dagster_run_id: str) -> dict[str, Any] | None:
    """The version the Dagster run published under its run alias, if it did."""
    alias_map: dict[str, str] = data["aliases"]
    return next(
        (
            v
            for v in data["versions"]
            if v["version"] == alias_map.get(run_alias(dagster_run_id))
            and published_by(v.get("info") or {}, dagster_run_id)
        ),
        None,
    )


def _version_of(
    data: dict[str, Any], digest: str, *, type: str, size: int, info: dict[str, Any] | None
) -> dict[str, Any]:
    """The document's version holding `digest`, added under the next number if none does."""
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
            "info": dict(info or {}),
        }
        versions.append(found)
    return found


def _sign(
    data: dict[str, Any], signer: Signer | None, entity: str, project: str, name: str
) -> None:
    """Replace the document's signature with `signer`'s (none without a signer)."""
    data.pop("signature", None)
    if signer is not None:
        data["signature"] = {
            "team": signer.team,
            "key_id": signer.key_id,
            "ed25519": base64.b64encode(
                signer.sign(_signed_message(entity, project, name, data))
            ).decode(),
        }
