"""`make redeploy TEAM=x`: rebuild and restart one team's containers, then reload its code.

Only <team>-code and <team>-worker are recreated (`--no-deps`): the platform services and
every other team keep running, and runs already in flight, which live in their own run
containers, finish untouched.
"""

import argparse
import shlex
import subprocess
import sys
import time

from envfile import REPO_ROOT
from wait_healthy import containers, describe
from webserver import default_url, load_error, reload_location

from registry import RegistryError, find_team


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("team")
    parser.add_argument("--compose", default="docker compose")
    parser.add_argument("--webserver", help="default: http://127.0.0.1:$WEBSERVER_PORT")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    try:
        team = find_team(args.team, REPO_ROOT)
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    compose = shlex.split(args.compose)
    services = list(team.services)
    started = time.monotonic()
    if team.built_here:
        subprocess.run([*compose, "build", services[0]], cwd=REPO_ROOT, check=True)
    subprocess.run(
        [*compose, "up", "-d", "--no-deps", "--force-recreate", *services],
        cwd=REPO_ROOT,
        check=True,
    )
    while True:
        states = {row[0]: row for row in map(describe, containers(compose)) if row[0] in services}
        if len(states) == len(services) and all(row[2] for row in states.values()):
            break
        if time.monotonic() - started > args.timeout:
            print(f"error: {', '.join(services)} not healthy after {args.timeout:.0f}s: {states}")
            return 1
        time.sleep(1)
    entry = reload_location(args.webserver or default_url(), team.name)
    error = load_error(entry)
    if error:
        print(f"error: {team.name} restarted but its code did not load:\n{error}")
        return 1
    deployed = team.image or "its folder"
    print(
        f"redeployed {team.name} ({deployed}) in {time.monotonic() - started:.1f}s "
        f"({entry['loadStatus']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
