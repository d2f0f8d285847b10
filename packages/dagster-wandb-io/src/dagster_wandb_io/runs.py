"""W&B runs used by the IO manager, and how concurrent steps of one Dagster run share them.

Steps of one Dagster run execute at the same time in different processes (Celery workers,
multiprocess executor) and all log into the W&B run whose id is the Dagster run id. Two
processes attached to the same W&B run at once would race on its history, summary and files.
So every use of the run (init -> log/use artifact -> finish) happens under an exclusive lock file
on the shared volume, keyed by entity/project/run id: uses are serialized across processes and
containers, each one a short resume of the same run. Offline, each use writes its own run
directory (unique per process and use) so no two processes ever write the same `.wandb` file;
`wandb sync` uploads them one after the other as resumes of the same run.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Layout
from .locks import FileLock
from .naming import validate_path_component

INTEGRATION_TAG = "dagster_wandb"


@dataclass(frozen=True)
class RunSpec:
    entity: str
    project: str
    run_id: str
    name: str
    tags: tuple[str, ...]
    dagster_run_id: str
    host: str
    api_key: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_path_component(self.entity, what="entity")
        validate_path_component(self.project, what="project")
        validate_path_component(self.run_id, what="run id")


@dataclass(frozen=True)
class RunInfo:
    id: str
    name: str
    path: str
    url: str | None


def build_run_spec(
    *,
    entity: str,
    project: str,
    dagster_run_id: str,
    host: str,
    api_key: str | None,
    run_id: str | None = None,
    run_name: str | None = None,
    run_tags: list[str] | tuple[str, ...] | None = None,
) -> RunSpec:
    tags = list(run_tags or [])
    if INTEGRATION_TAG not in tags:
        tags.append(INTEGRATION_TAG)
    return RunSpec(
        entity=entity,
        project=project,
        run_id=run_id or dagster_run_id,
        name=run_name or f"dagster-run-{dagster_run_id[:8]}",
        tags=tuple(tags),
        dagster_run_id=dagster_run_id,
        host=host,
        api_key=api_key,
    )


def run_lock_path(layout: Layout, spec: RunSpec) -> Path:
    return layout.locks_dir / "runs" / spec.entity / spec.project / f"{spec.run_id}.lock"


@contextmanager
def run_lock(layout: Layout, spec: RunSpec, timeout: float | None = 3600) -> Iterator[None]:
    lock = FileLock(run_lock_path(layout, spec))
    lock.acquire(timeout=timeout)
    try:
        yield
    finally:
        lock.release()


def _settings(mode: str, spec: RunSpec) -> Any:
    import wandb

    kwargs: dict[str, Any] = {
        "mode": mode,
        "silent": True,
        "console": "off",
        "disable_git": True,
        "save_code": False,
        "x_save_requirements": False,
        "x_disable_stats": True,
        # Another wandb run may be active in this process (the user's own, with another id):
        # ours must not finish it.
        "reinit": "create_new",
    }
    if mode != "offline":
        kwargs["base_url"] = spec.host
        if spec.api_key:
            kwargs["api_key"] = spec.api_key
    return wandb.Settings(**kwargs)


def run_info(run: Any, spec: RunSpec, *, app_url: str) -> RunInfo:
    url = None
    try:
        url = run.url if not getattr(run.settings, "_offline", False) else None
    except Exception:
        url = None
    return RunInfo(
        id=run.id,
        name=run.name or spec.name,
        path="/".join(run.path) if isinstance(run.path, list | tuple) else str(run.path),
        url=url or f"{app_url}/{spec.entity}/{spec.project}/runs/{run.id}",
    )


@contextmanager
def open_run(layout: Layout, spec: RunSpec, *, mode: str) -> Iterator[Any]:
    """A W&B run for `spec`: the caller's own active run if it is the same one, else a
    short-lived resume of it. Call inside `run_lock`."""
    import wandb

    current = wandb.run
    if (
        current is not None
        and current.id == spec.run_id
        and current.project == spec.project
        and (current.entity or spec.entity) == spec.entity
    ):
        # The user resumed this run themselves (seed best practice 7): log into it and leave
        # finishing it to them.
        yield current
        return
    unique = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    run_dir = (
        layout.wandb_runs_dir
        / spec.entity
        / spec.project
        / spec.run_id
        / f"{time.strftime('%Y%m%dT%H%M%S')}-{unique}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        id=spec.run_id,
        name=spec.name,
        entity=spec.entity,
        project=spec.project,
        tags=list(spec.tags),
        dir=str(run_dir),
        resume="allow",
        job_type="dagster",
        settings=_settings(mode, spec),
    )
    try:
        yield run
    finally:
        run.finish()


@contextmanager
def scoped_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore them (removing any that were unset).

    Some wandb settings are read from the environment only: its staging dir (WANDB_DATA_DIR),
    and the key and host `launch_add` builds its own API client from."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
