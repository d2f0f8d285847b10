"""Health probes: is a service up, asked as cheaply as its compose healthcheck asks."""

import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import config


def http_ok(url: str, auth_header: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth_header:
        request.add_header("Authorization", auth_header)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def grpc_serving(port: int) -> bool:
    """What compose's check of a code server asks (dagster-code-server-healthcheck)."""
    from dagster_team_celery.deploy.code_server_health import is_serving

    return is_serving(config.LOCAL_HOST, port)


def liveness_file(state: Path, team: str) -> Path:
    """Where ``team``'s worker in the stack at ``state`` shows that it is alive."""
    return state / "run" / f"{team}-worker.alive"


def worker_alive(liveness_file: Path, since: float = 0.0) -> bool:
    """Refreshed recently, and (given ``since``, a wall-clock time) after that moment: a
    killed worker leaves a fresh-looking file behind that its replacement must not inherit."""
    from dagster_team_celery.workers.liveness import STALE_AFTER_SECONDS, seconds_since_alive

    age = seconds_since_alive(liveness_file)
    return age is not None and age < STALE_AFTER_SECONDS and time.time() - age >= since
