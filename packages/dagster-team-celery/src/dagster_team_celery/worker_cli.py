"""``dagster-team-worker``: start a Celery worker on the team's own queue.

The process replaces itself with Celery (exec), so no wrapper process stays resident, and
signals from Docker or the devstack reach Celery directly.
"""

import os
import sys

from dagster_team_celery.settings import team_name

CONCURRENCY_ENV = "DAGSTER_CELERY_WORKER_CONCURRENCY"
POOL_ENV = "DAGSTER_CELERY_WORKER_POOL"
LOGLEVEL_ENV = "DAGSTER_CELERY_WORKER_LOGLEVEL"


def celery_worker_argv(team: str, extra_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "dagster_team_celery.worker",
        "worker",
        "--queues",
        team,
        "--hostname",
        f"{team}@%h",
        "--concurrency",
        os.environ.get(CONCURRENCY_ENV, "2"),
        "--pool",
        os.environ.get(POOL_ENV, "prefork"),
        "--loglevel",
        os.environ.get(LOGLEVEL_ENV, "INFO"),
        # Hand a step to the first free process instead of pre-assigning it to a busy one.
        "-O",
        "fair",
        # Team workers never need each other's state at startup; mingle costs seconds.
        "--without-mingle",
        "--without-gossip",
        *extra_args,
    ]


def main() -> None:
    argv = celery_worker_argv(team_name(), sys.argv[1:])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
