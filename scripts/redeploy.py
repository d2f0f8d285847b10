"""`make redeploy TEAM=x [MODE=local]`: restart one team, then reload its code location.

The one home of redeploys, in both modes. Only the team's code server and worker restart;
the platform services and every other team keep running, and runs already in flight finish
untouched (in containers they live in their own run containers; locally in their own
processes).

- Containers: rebuild the team's image (unless it is built in the team's own repository),
  recreate `<team>-code` and `<team>-worker` with `--no-deps`, wait until both are healthy.
- Local (`--local`): sync the team's venv, stop its two processes, and let the running `make
  dev` supervisor restart them (as `restart: unless-stopped` does in compose). Needs the
  platform venv, since it reads the stack through devstack.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from registry import RegistryError, find_team, service_names
from scripts.envfile import REPO_ROOT
from scripts.wait_healthy import containers, describe
from scripts.webserver import default_url, load_error, reload_location


class RedeployError(Exception):
    """A redeploy that did not complete; the message says what to look at."""


@dataclass
class RedeployReport:
    team: str
    seconds: float
    old_pids: dict[str, int]
    new_pids: dict[str, int]


def redeploy_compose(team_name: str, compose: list[str], webserver: str, timeout: float) -> str:
    try:
        team = find_team(team_name, REPO_ROOT)
    except RegistryError as error:
        raise RedeployError(str(error)) from error
    services = list(team.services)
    started = time.monotonic()
    if team.built_here:
        subprocess.run([*compose, "build", services[0]], cwd=REPO_ROOT, check=True)
    # Not --no-deps: compose 2.26 then labels the containers without their depends_on, and
    # every later `make up` recreates them (docker/compose#12069). The dependencies are up, so
    # naming them changes nothing.
    subprocess.run(
        [*compose, "up", "-d", "--force-recreate", *services],
        cwd=REPO_ROOT,
        check=True,
    )
    while True:
        states = {row[0]: row for row in map(describe, containers(compose)) if row[0] in services}
        if len(states) == len(services) and all(row[2] for row in states.values()):
            break
        if time.monotonic() - started > timeout:
            raise RedeployError(f"{', '.join(services)} not healthy after {timeout:.0f}s: {states}")
        time.sleep(1)
    entry = reload_location(webserver, team.name)
    error = load_error(entry)
    if error:
        raise RedeployError(f"{team.name} restarted but its code did not load:\n{error}")
    deployed = team.image or "its folder"
    return (
        f"redeployed {team.name} ({deployed}) in {time.monotonic() - started:.1f}s "
        f"({entry['loadStatus']})"
    )


def stack_status(state: Path) -> dict:
    from devstack.stack_lock import read_status

    status = read_status(state)
    if status is None:
        raise RedeployError(f"No running local stack in {state} (start one with `make dev`).")
    return status


def redeploy_local(state: Path, team: str, timeout: float = 180.0) -> RedeployReport:
    from dagster_team_celery.workers.liveness import role_liveness_path
    from devstack import config
    from devstack.graphql_client import PlatformClient
    from devstack.health import grpc_serving, liveness_file, worker_alive
    from devstack.processes import wait_until

    started = time.monotonic()
    status = stack_status(state)
    root = Path(status["repo_root"])
    services = list(service_names(team))
    if any(service not in status["pids"] for service in services):
        raise RedeployError(f"Team {team!r} is not part of the stack in {state}.")
    sync = subprocess.run(
        ["uv", "sync", "--frozen", "--quiet"],
        cwd=config.team_dir(team, root),
        capture_output=True,
        text=True,
    )
    if sync.returncode != 0:
        raise RedeployError(f"uv sync for {team} failed; nothing was restarted:\n{sync.stderr}")
    old_pids = {service: status["pids"][service] for service in services}
    liveness = [
        role_liveness_path(role, liveness_file(state, team)) for role in status["worker_roles"]
    ]
    stopped_at = time.time()
    for service, pid in old_pids.items():
        with contextlib.suppress(ProcessLookupError):
            if service == f"{team}-code":
                os.killpg(pid, signal.SIGTERM)  # the code server and its run subprocesses
            else:
                # Only the workers' parent, as `docker stop` does: the runs in flight drain,
                # then the steps in flight finish, on the code they started with.
                os.kill(pid, signal.SIGTERM)

    def restarted() -> bool:
        pids = stack_status(state)["pids"]
        return all(pids[service] != old_pids[service] for service in services)

    if not wait_until(restarted, timeout):
        raise RedeployError(f"{team}'s processes were not restarted within {timeout:.0f}s")
    code_port = status["ports"][f"{team}-code"]

    def ready() -> bool:
        try:
            return grpc_serving(code_port) and all(
                worker_alive(path, since=stopped_at) for path in liveness
            )
        except Exception:
            return False

    if not wait_until(ready, timeout):
        raise RedeployError(f"{team} did not become healthy again; see {status['logs']}")
    client = PlatformClient(status["webserver"])
    client.reload_location(team)
    if not wait_until(lambda: client.locations()[team].healthy, timeout):
        error = client.locations()[team].error
        raise RedeployError(f"{team}'s code location did not load: {error}")
    new_pids = {service: stack_status(state)["pids"][service] for service in services}
    return RedeployReport(team, time.monotonic() - started, old_pids, new_pids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("team")
    parser.add_argument("--local", action="store_true", help="redeploy in a running `make dev`")
    parser.add_argument("--name", default="dev", help="with --local: the stack's state folder")
    parser.add_argument("--compose", default="docker compose")
    parser.add_argument("--webserver", help="default: http://127.0.0.1:$WEBSERVER_PORT")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    try:
        if args.local:
            report = redeploy_local(REPO_ROOT / ".devstack" / args.name, args.team)
            print(
                f"redeployed {report.team} in {report.seconds:.1f}s: "
                f"{report.old_pids} -> {report.new_pids}"
            )
        else:
            webserver = args.webserver or default_url()
            print(redeploy_compose(args.team, shlex.split(args.compose), webserver, args.timeout))
    except RedeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
