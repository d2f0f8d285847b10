"""`LoadedArtifact`: an artifact version read through the shared cache.

It offers the read side of `wandb.Artifact` that ops and assets use (`name`, `version`, `type`,
`metadata`, `get`, `get_entry`/`get_path`, `download`, `verify`, `files`) from the cached files,
online and offline alike. Online, anything else (e.g. `link` to the model registry) is delegated
to the real `wandb.Artifact`, available as `wandb_artifact`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cache import EntryManifest
from .errors import OfflineUnavailableError, WandbArtifactsIOManagerError

FetchFile = Callable[[str], Path]


class LocalEntry:
    def __init__(
        self,
        artifact: LoadedArtifact,
        path: str,
        digest: str,
        size: int | None,
        ref: str | None = None,
    ) -> None:
        self._artifact = artifact
        self.path = path
        self.digest = digest
        self.size = size
        self.ref = ref

    def download(self, root: str | None = None, skip_cache: bool | None = None) -> str:
        """Local path of this file (fetched into the shared cache if needed)."""
        del skip_cache
        if self.ref is not None:
            raise WandbArtifactsIOManagerError(
                f"{self.path!r} is a reference to {self.ref}; its content is not stored in W&B"
                " nor in the cache. Fetch it from that location yourself."
            )
        local = self._artifact._fetch(self.path)
        if root is None:
            return str(local)
        dest = Path(root) / self.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dest)
        return str(dest)

    def ref_target(self) -> str:
        if self.ref is None:
            raise ValueError("Only reference entries support ref_target().")
        return self.ref

    def __repr__(self) -> str:
        return f"<LocalEntry {self.path}>"


class LocalManifest:
    def __init__(self, entries: dict[str, LocalEntry]) -> None:
        self.entries = entries

    def get_entry_by_path(self, path: str) -> LocalEntry | None:
        return self.entries.get(path)

    def get_entries_in_directory(self, directory: str) -> list[LocalEntry]:
        prefix = directory.rstrip("/") + "/"
        return [e for p, e in self.entries.items() if p.startswith(prefix)]


class LoadedArtifact:
    def __init__(
        self,
        *,
        manifest: EntryManifest,
        version: str,
        aliases: list[str],
        files_dir: Path,
        fetch: FetchFile,
        artifact_id: str | None = None,
        url: str | None = None,
        wandb_artifact: Any = None,
    ) -> None:
        self._manifest_data = manifest
        self._files_dir = files_dir
        self._fetch = fetch
        self.entity = manifest.entity
        self.project = manifest.project
        self.source_name = manifest.name
        self.version = version
        self.type = manifest.type
        self.digest = manifest.digest
        self.description = manifest.description
        self.metadata = dict(manifest.metadata)
        self.aliases = list(aliases)
        self.id = artifact_id
        self.url = url
        self.wandb_artifact = wandb_artifact
        entries = {p: LocalEntry(self, p, r.md5, r.size) for p, r in manifest.files.items()}
        for p, r in manifest.references.items():
            entries[p] = LocalEntry(self, p, str(r.get("digest")), r.get("size"), r.get("ref"))
        self.manifest = LocalManifest(entries)

    @property
    def name(self) -> str:
        return f"{self.source_name}:{self.version}"

    @property
    def qualified_name(self) -> str:
        return f"{self.entity}/{self.project}/{self.name}"

    @property
    def size(self) -> int:
        return self._manifest_data.size

    @property
    def state(self) -> str:
        return "COMMITTED"

    def files(self) -> list[str]:
        return sorted(self.manifest.entries)

    def get_entry(self, name: str) -> LocalEntry:
        entry = self.manifest.entries.get(str(name))
        if entry is None:
            raise KeyError(
                f"Path not contained in artifact {self.name}: {name}. Files: {self.files()}"
            )
        return entry

    def get_path(self, name: str) -> LocalEntry:
        return self.get_entry(name)

    def _obj_entry(self, name: str) -> tuple[LocalEntry | None, Any]:
        from wandb.data_types import WBValue

        for wb_class in WBValue.type_mapping().values():
            entry = self.manifest.entries.get(wb_class.with_suffix(name))
            if entry is not None:
                return entry, wb_class
        return None, None

    def get(self, name: str) -> Any:
        """The W&B object (Table, Image, ...) stored under `name`, or None."""
        entry, wb_class = self._obj_entry(name)
        if entry is None:
            return None
        with open(entry.download()) as f:
            json_obj = json.load(f)
        return wb_class.from_json(json_obj, self)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def download(self, root: str | None = None, **_: Any) -> str:
        """The directory holding the artifact's files (every file fetched)."""
        for entry in self.manifest.entries.values():
            if entry.ref is None:
                entry.download()
        if root is None:
            return str(self._files_dir)
        shutil.copytree(self._files_dir, root, dirs_exist_ok=True)
        return str(root)

    def verify(self, root: str | None = None) -> None:
        from .cache import md5_file_b64

        base = Path(root) if root is not None else Path(self.download())
        for entry in self.manifest.entries.values():
            if entry.ref is not None:
                continue
            if md5_file_b64(base / entry.path) != entry.digest:
                raise ValueError(f"Digest mismatch for {entry.path} in {self.name}")

    def _local_path_to_name(self, file_path: str) -> str | None:
        try:
            return str(Path(file_path).resolve().relative_to(self._files_dir.resolve()))
        except ValueError:
            return None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        wandb_artifact = self.__dict__.get("wandb_artifact")
        if wandb_artifact is not None:
            return getattr(wandb_artifact, attr)
        raise OfflineUnavailableError(
            f"`{attr}` needs the W&B cloud, but {self.__dict__.get('source_name')} was read"
            " offline from the shared cache. Run online (WANDB_MODE=online with an API key)"
            " to use it."
        )

    def __repr__(self) -> str:
        return f"<LoadedArtifact {self.qualified_name}>"
