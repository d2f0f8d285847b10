"""Docker/devstack health check for a team worker: exits 0 while the worker is consuming."""

import sys

from dagster_team_celery.liveness import STALE_AFTER_SECONDS, liveness_path, seconds_since_alive


def main() -> int:
    path = liveness_path()
    age = seconds_since_alive(path)
    if age is None:
        print(f"unhealthy: {path} is missing (worker not started or not connected to the broker)")
        return 1
    if age > STALE_AFTER_SECONDS:
        print(f"unhealthy: {path} last refreshed {age:.0f}s ago (> {STALE_AFTER_SECONDS:.0f}s)")
        return 1
    print(f"healthy: refreshed {age:.1f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
