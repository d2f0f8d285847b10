"""``dagster-team-worker`` and ``dagster-team-run-worker``: start a Celery worker on one of the
team's queues, its step queue or its run queue.

The process replaces itself with Celery (exec), so no wrapper process stays resident, and
signals from Docker or the devstack reach Celery directly.
"""

import os
import sys

from dagster_team_celery.settings import run_queue, team_name

CONCURRENCY_ENV = "DAGSTER_CELERY_WORKER_CONCURRENCY"
POOL_ENV = "DAGSTER_CELERY_WORKER_POOL"
LOGLEVEL_ENV = "DAGSTER_CELERY_WORKER_LOGLEVEL"
# Runs at once per run worker: the per-team run limit in dagster.yaml, so one worker can run
# every run the coordinator lets the team have.
RUN_CONCURRENCY_ENV = "DAGSTER_RUN_WORKER_CONCURRENCY"
DEFAULT_RUN_CONCURRENCY = "4"
# Forks kept ready while the worker is idle; Celery's autoscaler forks more (within a second)
# while runs wait, and retires them after 30 s without work. Each idle fork costs memory.
IDLE_FORKS_ENV = "DAGSTER_RUN_WORKER_IDLE_FORKS"
DEFAULT_IDLE_FORKS = "1"


def celery_worker_argv(team: str, extra_args: list[str]) -> list[str]:
    return celery_argv(
        "dagster_team_celery.worker",
        queue=team,
        hostname=f"{team}@%h",
        processes=["--concurrency", os.environ.get(CONCURRENCY_ENV, "2")],
        pool=os.environ.get(POOL_ENV, "prefork"),
        extra_args=extra_args,
    )


def run_worker_argv(team: str, extra_args: list[str]) -> list[str]:
    most = os.environ.get(RUN_CONCURRENCY_ENV, DEFAULT_RUN_CONCURRENCY)
    idle = os.environ.get(IDLE_FORKS_ENV, DEFAULT_IDLE_FORKS)
    return celery_argv(
        "dagster_team_celery.run_worker",
        queue=run_queue(team),
        hostname=f"{run_queue(team)}@%h",
        processes=["--autoscale", f"{most},{idle}"],
        pool="prefork",
        # Every run gets a fresh fork of the warm main process; none inherits another's state.
        extra_args=["--max-tasks-per-child", "1", *extra_args],
    )


def celery_argv(
    app: str, queue: str, hostname: str, processes: list[str], pool: str, extra_args: list[str]
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
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


def main() -> None:
    exec_argv(celery_worker_argv(team_name(), sys.argv[1:]))


def run_worker_main() -> None:
    exec_argv(run_worker_argv(team_name(), sys.argv[1:]))


def exec_argv(argv: list[str]) -> None:
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
