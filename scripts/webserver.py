"""The two webserver calls the deploy scripts make, over GraphQL, with the standard library."""

import json
import time
import urllib.error
import urllib.request

from scripts.envfile import setting
from scripts.ui_login import DEFAULT_USER, basic_auth_header

# The proxy answers these while the webserver it fronts is new (recreated by `make up`, say) and
# its address not yet followed: healthy by its own check, not yet reachable through the login.
GATEWAY_ERRORS = (502, 503, 504)
GATEWAY_WAIT_SECONDS = 90.0

RELOAD_LOCATION = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } }
    ... on PythonError { message }
  }
}
"""

# Rereads workspace.yaml: how the webserver learns of a team added or removed while it runs.
RELOAD_WORKSPACE = """
mutation {
  reloadWorkspace {
    __typename
    ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } } }
    ... on PythonError { message }
  }
}
"""


def default_url() -> str:
    return f"http://127.0.0.1:{setting('WEBSERVER_PORT', '3000')}"


def login_header() -> dict[str, str]:
    """The UI proxy's basic auth, from UI_USER and UI_PASSWORD (the environment, then .env);
    no header where no password is set (a webserver reached without the proxy)."""
    password = setting("UI_PASSWORD", "")
    if not password:
        return {}
    return basic_auth_header(setting("UI_USER", DEFAULT_USER), password)


def graphql(
    url: str,
    query: str,
    variables: dict | None = None,
    timeout: float = 120,
) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json", **login_header()},
    )
    deadline = time.monotonic() + GATEWAY_WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())["data"]
        except urllib.error.HTTPError as error:
            if error.code == 403:
                raise RuntimeError(
                    f"the webserver at {url} refused the platform tools' login: "
                    f"{forbidden_reason(error)}; UI_USER must be an admin in keys/ui-access.yaml "
                    "(`make env` makes it one)"
                ) from None
            if error.code == 401:
                raise RuntimeError(
                    f"the UI's proxy at {url} refused UI_USER/UI_PASSWORD from .env: if you "
                    "changed UI_PASSWORD, run `make env`, then `docker compose restart ui`"
                ) from None
            if error.code not in GATEWAY_ERRORS or time.monotonic() > deadline:
                raise
        time.sleep(1)


def forbidden_reason(error: urllib.error.HTTPError) -> str:
    try:
        return json.loads(error.read())["errors"][-1]["message"]
    except (ValueError, KeyError, IndexError):
        return f"HTTP {error.code}"


def audit(url: str, limit: int) -> list[dict]:
    """The newest entries of the UI's audit log (dagster_team_celery/ui_access/audit.py)."""
    request = urllib.request.Request(f"{url}/ui-audit?limit={limit}", headers=login_header())
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m scripts.webserver")
    commands = parser.add_subparsers(dest="command", required=True)
    audit_command = commands.add_parser("audit", help="print the UI's audit log, newest first")
    audit_command.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    for entry in audit(default_url(), args.limit):
        print(json.dumps(entry, sort_keys=True))


def load_error(entry: dict) -> str | None:
    return (entry.get("locationOrLoadError") or {}).get("message") or entry.get("message")


def reload_location(url: str, team: str) -> dict:
    return graphql(url, RELOAD_LOCATION, {"name": team})["reloadRepositoryLocation"]


def reload_workspace(url: str) -> dict[str, str | None]:
    """Every location the webserver now serves, mapped to its load error (None when loaded)."""
    result = graphql(url, RELOAD_WORKSPACE)["reloadWorkspace"]
    if "locationEntries" not in result:
        raise RuntimeError(f"the webserver could not reload its workspace: {load_error(result)}")
    return {entry["name"]: load_error(entry) for entry in result["locationEntries"]}


if __name__ == "__main__":
    main()
