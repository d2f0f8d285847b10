"""The team's two kinds of Celery worker: the step worker (its step queue) and the warm run
worker (its run queue), each ``celery worker`` with the platform's flags; ``celery_args`` gives
the command line after ``celery``, so a test or a debugging session can also run one role alone
with ``python -m celery``."""

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster_team_celery.settings import run_queue

CONCURRENCY_ENV = "DAGSTER_CELERY_WORKER_CONCURRENCY"
POOL_ENV = "DAGSTER_CELERY_WORKER_POOL"
LOGLEVEL_ENV = "DAGSTER_CELERY_WORKER_LOGLEVEL"
# Runs at once per run worker: the per-team run limit in dagster.yaml, so one worker can run
# every run the coordinator lets the team have.
RUN_CONCURRENCY_ENV = "DAGSTER_RUN_WORKER_CONCURRENCY"
DEFAULT_RUN_CONCURRENCY = "4"
# Forks kept ready while the worker is idle. None by default: Celery's autoscaler forks one as a
# run's task arrives (the run worker holds everything preloaded, so that costs about 0.04 s),
# and an idle fork would cost each team about 22 MiB (ml, 2026-12-06).
IDLE_FORKS_ENV = "DAGSTER_RUN_WORKER_IDLE_FORKS"
DEFAULT_IDLE_FORKS = "0"


@dataclass(frozen=True)
class WorkerRole:
    name: str
    # Imported by the preloaded parent: the Celery app, which imports the team's code first.
    app_module: str
    celery_args: Callable[[str], list[str]]
    # Defaults for this role's process only (an operator's own setting wins).
    environment: dict[str, str] = field(default_factory=dict)


def step_worker_args(team: str) -> list[str]:
    return celery_args(
        "dagster_team_celery.steps.step_worker",
        queue=team,
        hostname=f"{team}@%h",
        processes=["--concurrency", os.environ.get(CONCURRENCY_ENV, "2")],
        pool=os.environ.get(POOL_ENV, "prefork"),
    )


def run_worker_args(team: str) -> list[str]:
    most = os.environ.get(RUN_CONCURRENCY_ENV, DEFAULT_RUN_CONCURRENCY)
    idle = os.environ.get(IDLE_FORKS_ENV, DEFAULT_IDLE_FORKS)
    return celery_args(
        "dagster_team_celery.runs.run_worker",
        queue=run_queue(team),
        hostname=f"{run_queue(team)}@%h",
        processes=["--autoscale", f"{most},{idle}"],
        pool="prefork",
        # Every run gets a fresh fork of the warm main process; none inherits another's state.
        extra_args=("--max-tasks-per-child", "1"),
    )


ROLES = {
    "steps": WorkerRole("steps", "dagster_team_celery.steps.step_worker", step_worker_args),
    "runs": WorkerRole(
        "runs",
        "dagster_team_celery.runs.run_worker",
        run_worker_args,
        # Every run gets a fresh fork anyway; forks added for a burst retire 10-20 s after the
        # last run instead of Celery's 30-60 s, so an idle team is back to one fork sooner.
        environment={"AUTOSCALE_KEEPALIVE": "10"},
    ),
}


def celery_args(
    app: str,
    queue: str,
    hostname: str,
    processes: list[str],
    pool: str,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    return [
        "--app",
        app,
        "worker",
        "--queues",
        queue,
        "--hostname",
        hostname,
        *processes,
        "--pool",
        pool,
        "--loglevel",
        os.environ.get(LOGLEVEL_ENV, "INFO"),
        # Hand a task to the first free process instead of pre-assigning it to a busy one.
        "-O",
        "fair",
        # Team workers never need each other's state at startup; mingle costs seconds.
        "--without-mingle",
        "--without-gossip",
        *extra_args,
    ]
