"""A liveness file the worker refreshes while it is connected and consuming.

``celery inspect ping`` costs a Python start, a broker round trip and a broadcast per check.
A file touched from the consumer's own event loop answers the same question (is this worker
connected and its loop turning?) with a ``stat``.
"""

import os
import time
from pathlib import Path

LIVENESS_FILE_ENV = "DAGSTER_CELERY_LIVENESS_FILE"
DEFAULT_LIVENESS_FILE = "/tmp/dagster-team-worker.alive"
REFRESH_SECONDS = 5.0
# Three missed refreshes mean the loop is stuck or the broker connection is gone.
STALE_AFTER_SECONDS = 3 * REFRESH_SECONDS


def liveness_path() -> Path:
    return Path(os.environ.get(LIVENESS_FILE_ENV, DEFAULT_LIVENESS_FILE))


def role_liveness_path(role: str, base: Path | None = None) -> Path:
    """Each of a worker's roles (steps, runs) keeps its own file beside the configured one."""
    base = base or liveness_path()
    return base.with_name(f"{base.stem}-{role}{base.suffix}")


def mark_alive(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def mark_dead(path: Path) -> None:
    path.unlink(missing_ok=True)


def seconds_since_alive(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
