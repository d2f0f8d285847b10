"""`make redeploy TEAM=x`: rebuild and restart one team's containers, then reload its code.

Only <team>-code and <team>-worker are recreated (`--no-deps`): the platform services and
every other team keep running, and runs already in flight, which live in their own run
containers, finish untouched.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
import urllib.request

from envfile import REPO_ROOT, setting
from wait_healthy import containers, describe

RELOAD_MUTATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } }
    ... on PythonError { message }
  }
}
"""


def registered_teams() -> list[str]:
    lines = (REPO_ROOT / "workspace.yaml").read_text().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines if "location_name:" in line]


def reload_location(webserver: str, team: str) -> dict:
    request = urllib.request.Request(
        f"{webserver}/graphql",
        data=json.dumps({"query": RELOAD_MUTATION, "variables": {"name": team}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["data"]["reloadRepositoryLocation"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("team")
    parser.add_argument("--compose", default="docker compose")
    parser.add_argument("--webserver", help="default: http://127.0.0.1:$WEBSERVER_PORT")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if args.team not in registered_teams():
        print(f"error: unknown team {args.team!r}; teams: {', '.join(registered_teams())}")
        return 1
    compose = shlex.split(args.compose)
    services = [f"{args.team}-code", f"{args.team}-worker"]
    started = time.monotonic()
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
    webserver = args.webserver or f"http://127.0.0.1:{setting('WEBSERVER_PORT', '3000')}"
    entry = reload_location(webserver, args.team)
    error = (entry.get("locationOrLoadError") or {}).get("message") or entry.get("message")
    if error:
        print(f"error: {args.team} restarted but its code did not load:\n{error}")
        return 1
    print(f"redeployed {args.team} in {time.monotonic() - started:.1f}s ({entry['loadStatus']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
