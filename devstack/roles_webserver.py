"""A webserver with the UI's roles on, beside a local stack's (which runs without: local mode
is one person's), and callers that are told apart as the login proxy tells them apart: by the
X-Platform-User header it sets. Used by tests/test_ui_roles.py (the API),
tests/ui/test_ui_roles_browser.py (Chromium) and the bench (what the roles cost a request)."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from dagster_team_celery.ui_access.people import USER_HEADER
from devstack.graphql_client import PlatformClient
from devstack.health import http_ok
from devstack.local_stack import PLATFORM_BIN, LocalStack, free_port
from devstack.processes import wait_until

# Alice is a member of the bakery, Vera a viewer, and the platform's tools an admin.
ACCESS = """
users:
  tools: {role: admin}
  alice: {role: member, teams: [bakery]}
  vera: {role: viewer}
"""
READY_SECONDS = 180

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { id } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
# What the UI's Terminate sends for a run that has started.
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId, terminatePolicy: SAFE_TERMINATE) {
    __typename
    ... on UnauthorizedError { message }
  }
}
"""
DELETE = "mutation Delete($runId: String!) { deleteRun(runId: $runId) { __typename } }"
WIPE = """
mutation Wipe($key: [String!]!) {
  wipeAssets(assetPartitionRanges: [{assetKey: {path: $key}}]) { __typename }
}
"""
RELOAD = """
mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename } }
"""
RELOAD_WORKSPACE = "mutation { reloadWorkspace { __typename } }"
RUN_STATUS = "query Status($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"


@dataclass
class Caller:
    """A person calling the API: named by the header the proxy sets (a webserver reached
    directly), or signed in with ``auth`` through the proxy (which then sets the header, and
    replaces any ``user`` the caller sends)."""

    url: str
    user: str
    auth: tuple[str, str] | None = None

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> tuple[int, dict]:
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={USER_HEADER: self.user} if self.user else {},
            auth=self.auth,
            timeout=120,
        )
        return response.status_code, response.json()

    def launch(self, location: str, job: str, run_config: dict | None = None) -> tuple[int, dict]:
        selector = {
            "repositoryLocationName": location,
            "repositoryName": "__repository__",
            "jobName": job,
        }
        params = {"selector": selector, "runConfigData": run_config or {}}
        return self.graphql(LAUNCH, {"params": params})

    def launched(self, location: str, job: str, run_config: dict | None = None) -> str:
        status, body = self.launch(location, job, run_config)
        assert status == 200, body
        return body["data"]["launchRun"]["run"]["id"]

    def run_status(self, run_id: str) -> str:
        return self.graphql(RUN_STATUS, {"runId": run_id})[1]["data"]["runOrError"]["status"]


def refusal(body: dict) -> dict:
    """The error the platform adds to a refused mutation's answer."""
    return next(e for e in body["errors"] if e.get("extensions", {}).get("code") == "FORBIDDEN")


@contextmanager
def roles_webserver(stack: LocalStack, folder: Path) -> Iterator[str]:
    access = folder / "ui-access.yaml"
    access.write_text(ACCESS)
    port = free_port()
    env = {
        **stack.webserver_env(),
        "DAGSTER_UI_ROLES": "enforce",
        "DAGSTER_UI_ACCESS_FILE": str(access),
    }
    argv = [
        PLATFORM_BIN / "dagster-platform-webserver",
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--workspace", str(stack.home / "workspace.yaml")),
        # As the stack's own webserver and compose's: no pooled connection.
        *("--db-pool-recycle", "0"),
    ]
    url = f"http://127.0.0.1:{port}"
    with (folder / "webserver.log").open("w") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    log_text = lambda: (folder / "webserver.log").read_text()[-3000:]  # noqa: E731
    try:
        started = lambda: process.poll() is None and http_ok(f"{url}/server_info")  # noqa: E731
        assert wait_until(started, READY_SECONDS), f"the roles webserver failed:\n{log_text()}"
        # Its own workspace: a launch before a location has loaded finds no job.
        PlatformClient(url).wait_for_locations(stack.teams, READY_SECONDS)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
