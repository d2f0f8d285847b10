"""``dagster-team-worker [steps] [runs]``: the team's Celery workers, on its step queue, its
run queue, or both (the default), forked from one preloaded parent (worker_family.py) in the
roles worker_roles.py defines.
"""

import argparse
import sys

from dagster_team_celery.settings import team_name
from dagster_team_celery.workers.worker_roles import ROLES, WorkerRole


def worker_argv(*roles: str) -> list[str]:
    """The command that starts the team's workers in these roles (all, if none is named)."""
    return [sys.executable, "-m", "dagster_team_celery.workers.worker_cli", *roles]


def parse_roles(argv: list[str]) -> list[WorkerRole]:
    parser = argparse.ArgumentParser(
        prog="dagster-team-worker",
        description="Run $DAGSTER_TEAM's Celery workers, forked from one process that has "
        "imported the team's code once.",
    )
    parser.add_argument(
        "roles",
        nargs="*",
        metavar="{steps,runs}",
        help="steps: the team's step queue; runs: its run queue (warm run starts). Default: both.",
    )
    names = parser.parse_args(argv).roles or list(ROLES)
    unknown = [name for name in names if name not in ROLES]
    if unknown:
        parser.error(f"unknown role(s) {', '.join(map(repr, unknown))}: choose steps or runs")
    return [ROLES[name] for name in dict.fromkeys(names)]


def main() -> None:
    # Not at the top: the worker health check parses roles here, and must not import Celery.
    from dagster_team_celery.workers.worker_family import WorkerFamily

    roles = parse_roles(sys.argv[1:])
    sys.exit(WorkerFamily(team_name(), roles).run())


if __name__ == "__main__":
    main()
