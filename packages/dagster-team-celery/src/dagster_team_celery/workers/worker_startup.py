"""What every team worker does before it consumes a queue, step worker and run worker alike.

It imports the team's Dagster code first. If that fails, Celery exits before it connects, so a
worker that cannot run a team's steps or runs never takes one off the queue. While it consumes,
it keeps a liveness file fresh for the health check.
"""

import importlib
import os
from pathlib import Path

from celery import bootsteps
from dagster._core.definitions.reconstruct import ReconstructableRepository

from dagster_team_celery.settings import PlatformConfigError
from dagster_team_celery.steps.step_task import own_instance, serve_only, warm_up_before_fork
from dagster_team_celery.workers.liveness import (
    REFRESH_SECONDS,
    liveness_path,
    mark_alive,
    mark_dead,
)

TEAM_MODULE_ENV = "DAGSTER_TEAM_MODULE"


def team_module(team: str) -> str:
    return os.environ.get(TEAM_MODULE_ENV) or f"{team}.definitions"


def import_team_code(team: str, preload: tuple[str, ...] = ()) -> str:
    """Import and load the team's definitions, and the ``preload`` modules, before the pool
    forks; return the module's name."""
    module_name = team_module(team)
    serve_only(module_name)
    open_own_instance()
    try:
        importlib.import_module(module_name)
        # Load the definitions as the code server does (same pointer), so a broken asset
        # module fails the worker now, and every forked pool process starts with them loaded.
        warm_up_before_fork(
            ReconstructableRepository.for_module(module_name, "defs", os.getcwd()), preload
        )
    except Exception as error:
        raise PlatformConfigError(
            f"Worker for team {team!r} cannot import its code module {module_name!r}: "
            f"{type(error).__name__}: {error}. Fix the team's code or its image; the worker "
            f"will not consume queue {team!r} until it imports. (Override the module with "
            f"{TEAM_MODULE_ENV}.)"
        ) from error
    return module_name


def open_own_instance() -> None:
    """Open the worker's own instance before anything forks, so every pool process and every
    run starts with it (it cost each run's process 0.16 s and 9 MiB, measured 2026-12-06).
    Its pooled engines hold no connection yet, so no child shares one."""
    try:
        own_instance(None)
    except Exception as error:
        raise PlatformConfigError(
            f"The worker cannot open its instance (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')!r}"
            f"): {type(error).__name__}: {error}. Check that the instance database in its "
            "dagster.yaml is up and reachable; the worker takes nothing off its queue until then."
        ) from error


class LivenessFile(bootsteps.StartStopStep):
    """Refresh the liveness file from the consumer loop; remove it when the consumer stops."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.path = liveness_path()
        self.timer_ref = None

    def start(self, consumer) -> None:
        mark_alive(self.path)
        self.timer_ref = consumer.timer.call_repeatedly(REFRESH_SECONDS, mark_alive, (self.path,))

    def stop(self, consumer) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        mark_dead(self.path)

    shutdown = stop


def check_own_instance() -> None:
    """Steps record events in the worker's own instance (tasks.own_instance), so it must have
    one: without dagster.yaml, Dagster would silently make a local SQLite instance."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not (Path(home) / "dagster.yaml").is_file():
        raise PlatformConfigError(
            f"The worker has no instance config: DAGSTER_HOME={home!r} holds no dagster.yaml."
            " Mount the platform's dagster.yaml there (docker-compose.yml does, as a config)."
        )
