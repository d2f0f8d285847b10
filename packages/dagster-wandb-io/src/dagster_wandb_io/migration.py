"""Move a host's volume-kept offline artifacts into the shared store of record.

Before the object store, an offline artifact lived only in one host's cache volume and its
index file. `dagster-wandb-io store migrate` (run by the platform's init service at every start,
and safe to run again) uploads each indexed version whose entry is intact here, then copies each
index document into the shared index unless that already holds a newer one. Documents are copied
as signed: a document whose signature fails is reported and left behind, never re-signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Layout, SharedCache
from .errors import CacheCorruptionError, OfflineIndexError, SignatureError
from .index import OfflineIndex
from .index_files import FileIndex
from .store import ArtifactStore


@dataclass
class MigrationReport:
    uploaded: list[str] = field(default_factory=list)
    already_stored: int = 0
    missing: list[str] = field(default_factory=list)
    indexed: list[str] = field(default_factory=list)
    kept_newer: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "uploaded": self.uploaded,
            "already_stored": self.already_stored,
            "missing": self.missing,
            "indexed": self.indexed,
            "kept_newer": self.kept_newer,
            "refused": self.refused,
            "bytes_uploaded": self.bytes_uploaded,
        }


def migrate(base_dir: Path, store: ArtifactStore) -> MigrationReport:
    """Upload this volume's offline entries to `store.objects` and copy its index files into
    `store.index` (the shared one)."""
    if store.objects is None or isinstance(store.index.backend, FileIndex):
        raise OfflineIndexError(
            "Nothing to migrate to: set DAGSTER_WANDB_IO_STORE_URL and DAGSTER_WANDB_IO_INDEX_URL"
            " to the shared object store and index first."
        )
    layout = Layout(base_dir)
    cache = SharedCache(layout)
    files = FileIndex(layout)
    local = OfflineIndex(layout, files)
    report = MigrationReport()
    for entity, project, name, document in files.documents():
        label = f"{entity}/{project}/{name}"
        if document is None:
            report.refused.append(f"{label}: its index file is unreadable")
            continue
        try:
            local.verify(
                entity, project, name, document, store.trust, store.settings.allow_unsigned
            )
        except SignatureError as problem:
            report.refused.append(f"{label}: {problem}")
            continue
        for version in document["versions"]:
            entry = cache.entry(entity, project, name, version["digest"])
            where = f"{label}:{version['version']}"
            if store.objects.has(entity, project, name, version["digest"]):
                report.already_stored += 1
                continue
            with cache.using(entry):
                try:
                    manifest = entry.read_manifest()
                except CacheCorruptionError:
                    manifest = None
                if manifest is None or not all(
                    entry.check_file(path, record) for path, record in manifest.files.items()
                ):
                    report.missing.append(where)
                    continue
                report.bytes_uploaded += store.objects.upload(entry, manifest)
                report.uploaded.append(where)
        with store.index.backend.updating(entity, project, name) as slot:
            current = slot.load()
            if current is not None and int(current.get("counter", 0)) >= int(
                document.get("counter", 0)
            ):
                report.kept_newer.append(label)
                continue
            slot.save(document)
            report.indexed.append(label)
    return report
