"""Redeploy one team of a running local stack: sync its venv, restart its code server and
worker, reload its code location. Other teams' processes are never touched.

The running devstack's supervisor restarts the stopped processes (as `restart:
unless-stopped` does in compose), so this works from any process that can read the stack's
status.json.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import config
from devstack.client import PlatformClient
from devstack.processes import wait_until
from devstack.stack import StackError, grpc_serving, liveness_file, worker_alive


@dataclass
class RedeployReport:
    team: str
    seconds: float
    old_pids: dict[str, int]
    new_pids: dict[str, int]


def read_status(state: Path) -> dict:
    try:
        return json.loads((state / "status.json").read_text())
    except FileNotFoundError as error:
        raise StackError(
            f"No running local stack in {state} (start one with `make dev`)."
        ) from error


def redeploy(state: Path, team: str, timeout: float = 180.0) -> RedeployReport:
    started = time.monotonic()
    status = read_status(state)
    root = Path(status["repo_root"])
    services = [f"{team}-code", f"{team}-worker"]
    if any(service not in status["pids"] for service in services):
        raise StackError(f"Team {team!r} is not part of the stack in {state}.")
    sync = subprocess.run(
        ["uv", "sync", "--frozen", "--quiet"],
        cwd=config.team_dir(team, root),
        capture_output=True,
        text=True,
    )
    if sync.returncode != 0:
        raise StackError(f"uv sync for {team} failed; nothing was restarted:\n{sync.stderr}")
    old_pids = {service: status["pids"][service] for service in services}
    liveness = liveness_file(state, team)
    stopped_at = time.time()
    for pid in old_pids.values():
        # The worker finishes the steps it is running (warm shutdown) before it exits.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)

    def restarted() -> bool:
        pids = read_status(state)["pids"]
        return all(pids[service] != old_pids[service] for service in services)

    if not wait_until(restarted, timeout):
        raise StackError(f"{team}'s processes were not restarted within {timeout:.0f}s")
    code_port = status["ports"][f"{team}-code"]

    def ready() -> bool:
        try:
            return grpc_serving(code_port) and worker_alive(liveness, since=stopped_at)
        except Exception:
            return False

    if not wait_until(ready, timeout):
        raise StackError(f"{team} did not become healthy again; see {status['logs']}")
    client = PlatformClient(status["webserver"])
    client.reload_location(team)
    if not wait_until(lambda: client.locations()[team].healthy, timeout):
        raise StackError(f"{team}'s code location did not load: {client.locations()[team].error}")
    new_pids = {service: read_status(state)["pids"][service] for service in services}
    return RedeployReport(team, time.monotonic() - started, old_pids, new_pids)
