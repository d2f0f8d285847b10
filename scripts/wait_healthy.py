"""Wait until every compose service is healthy (or, for `init`, finished), and show them.

Works with Compose v2 and docker-compose 1.29 alike (1.29 has no `up --wait`), and reads health
from `docker inspect`, which podman's API reports where `compose ps` does not.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time

from registry import team_names
from scripts.envfile import REPO_ROOT
from scripts.webserver import default_url, reload_workspace

ONE_SHOT_SERVICES = {"init"}
PROGRESS_SECONDS = 10
# A location the webserver cannot reach yet, as against one whose code fails to load. Right
# after `up` changes a network (a team added or removed recreates the code gateway), the
# engine's DNS can answer late for a few seconds: seen here, every location unreachable at the
# first reload after all services were healthy, and loaded a moment later.
UNREACHABLE = "DagsterUserCodeUnreachableError"
REACHABLE_WITHIN_SECONDS = 120
RELOAD_EVERY_SECONDS = 3


def containers(compose: list[str]) -> list[dict]:
    ids = subprocess.run(
        [*compose, "ps", "-a", "-q"], capture_output=True, text=True
    ).stdout.split()
    if not ids:
        return []
    inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
    return json.loads(inspected.stdout or "[]")


def describe(container: dict) -> tuple[str, str, bool, bool]:
    """(service, state, ready, failed) for one container."""
    labels = container.get("Config", {}).get("Labels") or {}
    service = labels.get("com.docker.compose.service", container["Name"].lstrip("/"))
    state = container["State"]
    health = (state.get("Health") or {}).get("Status")
    if service in ONE_SHOT_SERVICES:
        finished = state["Status"] == "exited"
        ok = finished and state.get("ExitCode") == 0
        return (
            service,
            f"exited ({state.get('ExitCode')})" if finished else state["Status"],
            ok,
            (finished and not ok),
        )
    label = f"{state['Status']}/{health}" if health else state["Status"]
    return service, label, health == "healthy" or (health is None and state["Running"]), False


def show(rows: list[tuple[str, str, bool, bool]]) -> None:
    for service, state, ready, _ in sorted(rows):
        print(f"  {'ok ' if ready else '.. '} {service:<24} {state}")


class Progress:
    """Every PROGRESS_SECONDS, one line naming the services not ready yet and for how long each
    has been waiting: the same in a terminal and in a CI log."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.last = started
        self.waiting_since: dict[str, float] = {}

    def update(self, rows: list[tuple[str, str, bool, bool]]) -> None:
        now = time.monotonic()
        for service, _, ready, _ in rows:
            if ready:
                self.waiting_since.pop(service, None)
            else:
                self.waiting_since.setdefault(service, now)
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        states = {service: state for service, state, ready, _ in rows if not ready}
        waiting = ", ".join(
            f"{service} ({states[service]}, {now - since:.0f}s)"
            for service, since in sorted(self.waiting_since.items(), key=lambda item: item[1])
            if service in states
        )
        ready = sum(1 for row in rows if row[2])
        print(
            f"[{now - self.started:.0f}s] {ready}/{len(rows)} services ready; waiting for "
            f"{waiting or 'containers to be created'}",
            flush=True,
        )


def reload_until_reachable(url: str, patience: float = REACHABLE_WITHIN_SECONDS) -> dict:
    """Reload the workspace until no location is unreachable, or `patience` runs out; a
    location whose code fails to load is reported at once."""
    deadline = time.monotonic() + patience
    while True:
        locations = reload_workspace(url)
        unreachable = sorted(
            name for name, error in locations.items() if UNREACHABLE in (error or "")
        )
        if not unreachable or time.monotonic() >= deadline:
            return locations
        print(
            f"  not reachable yet: {', '.join(unreachable)} (a code server or the code gateway "
            "just started); reloading again",
            flush=True,
        )
        time.sleep(RELOAD_EVERY_SECONDS)


def reload_workspace_and_report(url: str | None) -> int:
    locations = reload_until_reachable(url or default_url())
    expected = set(team_names(REPO_ROOT))
    broken = {name: error for name, error in locations.items() if error}
    missing = expected - set(locations)
    for name in sorted(locations):
        print(f"  {'ok ' if not locations[name] else 'ERR'} code location {name}")
    for name, error in broken.items():
        print(f"--- {name} did not load:\n{error}")
    if missing:
        print(
            f"the webserver does not serve {', '.join(sorted(missing))}: is workspace.yaml "
            "mounted? `make generate`, then `make up` again"
        )
    return 1 if broken or missing else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compose", default="docker compose")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--once", action="store_true", help="print the states and exit")
    parser.add_argument(
        "--reload-workspace",
        action="store_true",
        help="then have the webserver reread workspace.yaml, so it serves teams added or "
        "removed while it ran, and check that every team's code loaded",
    )
    parser.add_argument("--webserver", help="default: http://127.0.0.1:$WEBSERVER_PORT")
    args = parser.parse_args()
    compose = shlex.split(args.compose)
    started = time.monotonic()
    progress = Progress(started)
    while True:
        rows = [describe(container) for container in containers(compose)]
        if args.once:
            show(rows)
            return 0
        progress.update(rows)
        failed = [row for row in rows if row[3]]
        if failed:
            show(rows)
            for service, *_ in failed:
                # The reason is in the log (a config check names the fix): show it right here.
                logs = subprocess.run(
                    [*compose, "logs", "--no-color", "--tail", "30", service],
                    capture_output=True,
                    text=True,
                )
                print(f"--- last lines of {service}:\n{logs.stdout}{logs.stderr}")
            print(f"failed: {', '.join(row[0] for row in failed)}; see `make logs`")
            return 1
        if rows and all(row[2] for row in rows):
            show(rows)
            print(f"all {len(rows)} services healthy after {time.monotonic() - started:.1f}s")
            return reload_workspace_and_report(args.webserver) if args.reload_workspace else 0
        if time.monotonic() - started > args.timeout:
            show(rows)
            print(f"not healthy after {args.timeout:.0f}s; see `make logs`")
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
