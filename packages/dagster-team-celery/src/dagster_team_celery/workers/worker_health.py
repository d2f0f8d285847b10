"""Docker/devstack health check for a team worker: exits 0 while each of its roles (steps,
runs, or both, as given to ``dagster-team-worker``) is consuming."""

import sys

from dagster_team_celery.workers.liveness import (
    STALE_AFTER_SECONDS,
    role_liveness_path,
    seconds_since_alive,
)
from dagster_team_celery.workers.worker_cli import parse_roles


def main(argv: list[str] | None = None) -> int:
    roles = parse_roles(sys.argv[1:] if argv is None else argv)
    status = 0
    for role in roles:
        path = role_liveness_path(role.name)
        age = seconds_since_alive(path)
        if age is None:
            print(
                f"unhealthy: {role.name}: {path} is missing (not started, or not connected to "
                "the broker)"
            )
            status = 1
        elif age > STALE_AFTER_SECONDS:
            print(
                f"unhealthy: {role.name}: {path} last refreshed {age:.0f}s ago "
                f"(> {STALE_AFTER_SECONDS:.0f}s)"
            )
            status = 1
        else:
            print(f"healthy: {role.name}: refreshed {age:.1f}s ago")
    return status


if __name__ == "__main__":
    sys.exit(main())
