"""The W&B cloud, behind a small interface.

The online code path only talks to W&B through `WandbCloudClient`, so tests can substitute an
in-memory fake (W&B's cloud is unreachable from CI). `WandbSdkClient` implements it with the
public SDK: `wandb.Api()` to resolve and download, `wandb.init` + `Run.log_artifact` /
`Run.use_artifact` to upload and record lineage.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .cache import Layout
from .errors import ArtifactNotFoundError, WandbArtifactsIOManagerError
from .runs import RunInfo, RunSpec, open_run, run_info

WANDB_CLOUD_HOST = "https://api.wandb.ai"


def app_url(host: str) -> str:
    host = host.rstrip("/")
    return "https://wandb.ai" if host == WANDB_CLOUD_HOST else host


@dataclass(frozen=True)
class RemoteFile:
    path: str
    digest: str
    size: int


@dataclass
class ArtifactVersion:
    """One version of an artifact: what a read resolves and a write reports alike."""

    entity: str
    project: str
    name: str
    version: str
    digest: str
    type: str
    id: str | None
    size: int
    url: str | None
    aliases: list[str]


@dataclass
class RemoteArtifact(ArtifactVersion):
    metadata: dict[str, Any]
    description: str | None
    files: dict[str, RemoteFile]
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    handle: Any = None


@dataclass(frozen=True)
class LoggedArtifact:
    id: str | None
    name: str
    version: str
    digest: str
    size: int
    url: str | None
    run: RunInfo


@runtime_checkable
class WandbCloudClient(Protocol):
    def resolve(self, entity: str, project: str, name: str, ref: str) -> RemoteArtifact | None:
        """The artifact version `ref` (version or alias), or None if it does not exist."""

    def list_artifact_names(self, entity: str, project: str) -> list[str]:
        """Names of the artifacts in the project (for 'not found' errors)."""

    def download_file(self, artifact: RemoteArtifact, path: str, dest: Path) -> int:
        """Download one file of `artifact` to exactly `dest`; return the bytes transferred."""

    def log_artifact(self, run: RunSpec, artifact: Any, aliases: list[str]) -> LoggedArtifact:
        """Upload a draft `wandb.Artifact` from the W&B run `run` and wait for it."""

    def use_artifact(self, run: RunSpec, artifact: RemoteArtifact) -> RunInfo:
        """Record that the W&B run `run` consumed `artifact` (lineage)."""


class WandbSdkClient:
    """`WandbCloudClient` on the public wandb SDK (never `wandb.sdk.internal`)."""

    def __init__(self, *, api_key: str | None, host: str, layout: Layout) -> None:
        self.api_key = api_key
        self.host = host
        self.layout = layout
        self._api: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            import wandb

            self._api = wandb.Api(api_key=self.api_key, overrides={"base_url": self.host})
        return self._api

    def resolve(self, entity: str, project: str, name: str, ref: str) -> RemoteArtifact | None:
        from wandb.errors import CommError

        try:
            a = self.api.artifact(f"{entity}/{project}/{name}:{ref}")
        except (CommError, ValueError) as exc:
            text = str(exc).lower()
            if "not found" in text or "does not exist" in text or "not exist" in text:
                return None
            raise WandbArtifactsIOManagerError(
                f"Could not reach W&B at {self.host} to resolve {entity}/{project}/{name}:{ref}"
                f" ({exc}). Check the network and the API key, or set WANDB_MODE=offline to"
                " read from the local offline index."
            ) from exc
        files: dict[str, RemoteFile] = {}
        refs: dict[str, dict[str, Any]] = {}
        for path, e in a.manifest.entries.items():
            if e.ref is None:
                files[path] = RemoteFile(path, str(e.digest), int(e.size or 0))
            else:
                refs[path] = {"ref": e.ref, "digest": str(e.digest), "size": e.size}
        return RemoteArtifact(
            entity=entity,
            project=project,
            name=name,
            version=a.version,
            digest=a.digest,
            type=a.type,
            id=a.id,
            size=a.size,
            url=a.url,
            aliases=list(a.aliases),
            metadata=dict(a.metadata),
            description=a.description,
            files=files,
            references=refs,
            handle=a,
        )

    def list_artifact_names(self, entity: str, project: str) -> list[str]:
        names: list[str] = []
        try:
            for t in self.api.artifact_types(project=f"{entity}/{project}"):
                for c in t.collections():
                    names.append(c.name)
                    if len(names) >= 200:
                        return sorted(names)
        except Exception:  # only used to enrich an error message
            return names
        return sorted(names)

    def download_file(self, artifact: RemoteArtifact, path: str, dest: Path) -> int:
        tmp_root = dest.parent / f".download-{uuid.uuid4().hex}"
        try:
            entry = artifact.handle.get_entry(path)
            downloaded = entry.download(root=str(tmp_root), skip_cache=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(downloaded, dest)
            return os.path.getsize(dest)
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)

    def log_artifact(self, run: RunSpec, artifact: Any, aliases: list[str]) -> LoggedArtifact:
        with open_run(self.layout, run, mode="online") as wandb_run:
            wandb_run.log_artifact(artifact, aliases=aliases)
            artifact.wait()
            info = run_info(wandb_run, run, app_url=app_url(self.host))
        return LoggedArtifact(
            id=artifact.id,
            name=artifact.name,
            version=artifact.version,
            digest=artifact.digest,
            size=artifact.size,
            url=artifact.url,
            run=info,
        )

    def use_artifact(self, run: RunSpec, artifact: RemoteArtifact) -> RunInfo:
        with open_run(self.layout, run, mode="online") as wandb_run:
            wandb_run.use_artifact(artifact.handle)
            return run_info(wandb_run, run, app_url=app_url(self.host))


def not_found(
    entity: str, project: str, name: str, ref: str, existing: list[str], *, offline: bool
) -> ArtifactNotFoundError:
    where = "the local offline index" if offline else "W&B"
    shown = ", ".join(existing[:30]) + (" ..." if len(existing) > 30 else "")
    hint = (
        "Materialize the upstream asset first (offline writes are indexed locally), or read it"
        " online once W&B is reachable."
        if offline
        else "Check the artifact name (asset key -> name mapping is in the README) and the"
        " version/alias, or the entity/project."
    )
    return ArtifactNotFoundError(
        f"Artifact {entity}/{project}/{name}:{ref} was not found in {where}. Artifacts that"
        f" exist in {entity}/{project}: [{shown}]. {hint}"
    )
