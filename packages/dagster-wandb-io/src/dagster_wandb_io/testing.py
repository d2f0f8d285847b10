"""Test doubles for code that uses this package: W&B's cloud API faked in memory behind the
package's client interface (``wandb_client``), and stores and run specs of one test entity.

W&B's cloud is not reachable from tests or benchmarks; this is the only fake. The package's own
tests and the platform's benchmarks (bench/wandb_io.py, bench/store_vs_volume.py) use it, as a
team's tests may: it ships with the package, so nothing imports another project's tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_wandb_io.runs import RunInfo, RunSpec
from dagster_wandb_io.wandb_client import LoggedArtifact, RemoteArtifact, RemoteFile

ENTITY = "my_entity"
PROJECT = "my_project"


@dataclass
class _Version:
    version: str
    digest: str
    type: str
    files: dict[str, bytes]
    refs: dict[str, dict[str, Any]]
    metadata: dict[str, Any]
    id: str
    description: str | None


@dataclass
class FakeCloud:
    """In-memory W&B cloud: the only fake in the suite."""

    collections: dict[tuple[str, str, str], list[_Version]] = field(default_factory=dict)
    aliases: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    bytes_downloaded: int = 0
    downloads: list[str] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)
    logged_by: list[str] = field(default_factory=list)
    corrupt_downloads: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count())

    def log_artifact(self, run: RunSpec, artifact: Any, aliases: list[str]) -> LoggedArtifact:
        name = artifact.name.split(":")[0]
        key = (run.entity, run.project, name)
        versions = self.collections.setdefault(key, [])
        digest = artifact.digest
        found = next((v for v in versions if v.digest == digest), None)
        if found is None:
            files, refs = {}, {}
            for path, e in artifact.manifest.entries.items():
                if e.ref is not None:
                    refs[path] = {"ref": e.ref, "digest": str(e.digest), "size": e.size}
                else:
                    files[path] = Path(e.local_path).read_bytes()
            found = _Version(
                f"v{len(versions)}",
                digest,
                artifact.type,
                files,
                refs,
                dict(artifact.metadata),
                f"fake-id-{next(self._ids)}",
                artifact.description,
            )
            versions.append(found)
        amap = self.aliases.setdefault(key, {})
        for a in aliases:
            amap[a] = found.version
        self.logged_by.append(run.run_id)
        url = f"https://wandb.ai/{run.entity}/{run.project}"
        return LoggedArtifact(
            id=found.id,
            name=f"{name}:{found.version}",
            version=found.version,
            digest=digest,
            size=sum(len(b) for b in found.files.values()),
            url=f"{url}/artifacts/{found.type}/{name}/{found.version}",
            run=RunInfo(
                run.run_id,
                run.name,
                f"{run.entity}/{run.project}/{run.run_id}",
                f"{url}/runs/{run.run_id}",
            ),
        )

    def resolve(self, entity: str, project: str, name: str, ref: str) -> RemoteArtifact | None:
        key = (entity, project, name)
        versions = self.collections.get(key, [])
        version = (
            ref if ref.startswith("v") and ref[1:].isdigit() else self.aliases.get(key, {}).get(ref)
        )
        v = next((x for x in versions if x.version == version), None)
        if v is None:
            return None
        import base64
        import hashlib

        files = {
            p: RemoteFile(p, base64.b64encode(hashlib.md5(b).digest()).decode(), len(b))
            for p, b in v.files.items()
        }
        return RemoteArtifact(
            entity=entity,
            project=project,
            name=name,
            version=v.version,
            digest=v.digest,
            type=v.type,
            id=v.id,
            size=sum(len(b) for b in v.files.values()),
            url=None,
            aliases=sorted(a for a, ver in self.aliases[key].items() if ver == v.version),
            metadata=dict(v.metadata),
            description=v.description,
            files=files,
            references=dict(v.refs),
            handle=v,
        )

    def list_artifact_names(self, entity: str, project: str) -> list[str]:
        return sorted(n for (e, p, n) in self.collections if (e, p) == (entity, project))

    def download_file(self, artifact: RemoteArtifact, path: str, dest: Path) -> int:
        data = artifact.handle.files[path]
        if self.corrupt_downloads:
            self.corrupt_downloads -= 1
            data = b"garbage" + data[7:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        self.bytes_downloaded += len(data)
        self.downloads.append(path)
        return len(data)

    def use_artifact(self, run: RunSpec, artifact: RemoteArtifact) -> RunInfo:
        self.used.append((run.run_id, f"{artifact.name}:{artifact.version}"))
        return RunInfo(run.run_id, run.name, f"{run.entity}/{run.project}/{run.run_id}", None)


def offline_store(base_dir: Path, **overrides: Any) -> Any:
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    settings = dict(
        base_dir=base_dir,
        mode="offline",
        entity=ENTITY,
        project=PROJECT,
        host="https://api.wandb.ai",
    )
    settings.update(overrides)
    return ArtifactStore(StoreSettings(**settings))


def online_store(base_dir: Path, cloud: Any) -> Any:
    from dagster_wandb_io.store import ArtifactStore

    return ArtifactStore(offline_store(base_dir, mode="online").settings, cloud)


def run_spec(dagster_run_id: str = "0ab2e48b-6d63-4ff5-b160-662cc60145f4") -> RunSpec:
    from dagster_wandb_io.runs import build_run_spec

    return build_run_spec(
        entity=ENTITY,
        project=PROJECT,
        dagster_run_id=dagster_run_id,
        host="https://api.wandb.ai",
        api_key=None,
    )
