"""Talk to a running platform through the webserver's GraphQL API.

The tests, the benchmarks and `make redeploy` all use this: submitting a job, waiting for its
run, reading which Celery worker ran each step, and reading or reloading code locations.
Submission and reloads go through dagster-graphql's own client; the rest are small queries.
"""

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from dagster_graphql import DagsterGraphQLClient
from requests.auth import HTTPBasicAuth

TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status startTime endTime creationTime tags { key value } }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

EVENTS_QUERY = """
query RunEvents($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message stepKey timestamp level }
        ... on MarkerEvent { markerStart markerEnd }
        ... on LogsCapturedEvent { fileKey stepKeys }
        ... on ExecutionStepFailureEvent { error { message causes { message } } }
        ... on EngineEvent { error { message causes { message } } }
        ... on DisplayableEvent {
          metadataEntries {
            label
            ... on TextMetadataEntry { text }
            ... on JsonMetadataEntry { jsonString }
          }
        }
      }
    }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

CAPTURED_LOGS_QUERY = """
query CapturedLogs($logKey: [String!]!) {
  capturedLogs(logKey: $logKey) { stdout stderr }
}
"""

JOB_METADATA_QUERY = """
query JobMetadata($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline {
      metadataEntries {
        label
        ... on JsonMetadataEntry { jsonString }
        ... on TextMetadataEntry { text }
      }
    }
    ... on PythonError { message }
  }
}
"""

STEP_OUTPUT_METADATA_QUERY = """
query OutputMetadata($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepOutputEvent {
          stepKey
          metadataEntries { label ... on JsonMetadataEntry { jsonString } }
        }
        ... on MaterializationEvent {
          stepKey
          assetKey { path }
          metadataEntries {
            label
            ... on IntMetadataEntry { intValue }
            ... on FloatMetadataEntry { floatValue }
            ... on TextMetadataEntry { text }
            ... on JsonMetadataEntry { jsonString }
            ... on PathMetadataEntry { path }
          }
        }
      }
    }
  }
}
"""

TERMINATE_MUTATION = """
mutation Terminate($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) {
    __typename
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

SET_POOL_LIMIT_MUTATION = """
mutation SetPoolLimit($pool: String!, $limit: Int!) {
  setConcurrencyLimit(concurrencyKey: $pool, limit: $limit)
}
"""

POOL_QUERY = """
query Pool($pool: String!) {
  instance {
    concurrencyLimit(concurrencyKey: $pool) {
      limit
      activeSlotCount
      pendingStepCount
      claimedSlots { runId stepKey }
      pendingSteps { runId stepKey }
    }
  }
}
"""

LOCATIONS_QUERY = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def _entry_value(entry: dict[str, Any]) -> Any:
    if "jsonString" in entry:
        return json.loads(entry["jsonString"])
    for field in ("intValue", "floatValue", "text", "path"):
        if field in entry:
            return entry[field]
    return None


@dataclass
class LocationStatus:
    name: str
    load_status: str  # LOADING or LOADED
    error: str | None  # the load error, when the code failed to import

    @property
    def healthy(self) -> bool:
        return self.load_status == "LOADED" and self.error is None


class PlatformClient:
    """``login`` is the UI proxy's user and password (compose); a URL may carry them instead,
    as ``http://user:password@host:port``."""

    def __init__(
        self, webserver_url: str, timeout: float = 120.0, login: tuple[str, str] | None = None
    ) -> None:
        parts = urlsplit(webserver_url.rstrip("/"))
        if parts.username is not None:
            login = (unquote(parts.username), unquote(parts.password or ""))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self.url = urlunsplit(parts)
        self.timeout = timeout
        self.auth = HTTPBasicAuth(*login) if login else None
        self.dagster = DagsterGraphQLClient(
            parts.hostname or "localhost",
            port_number=parts.port,
            timeout=int(timeout),
            auth=self.auth,
        )

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=self.timeout,
            auth=self.auth,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def submit_job(
        self,
        location: str,
        job: str,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return self.dagster.submit_job_execution(
            job,
            repository_location_name=location,
            repository_name="__repository__",
            run_config=run_config or {},
            tags=tags,
        )

    def run(self, run_id: str) -> dict[str, Any]:
        run = self.query(RUN_QUERY, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise RuntimeError(f"run {run_id}: {run}")
        return run

    def wait_for_run(self, run_id: str, timeout: float = 180.0, poll: float = 0.25) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = self.run(run_id)["status"]
            if status in TERMINAL_STATUSES:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f}s")
            time.sleep(poll)

    def terminate_run(self, run_id: str, force: bool = False) -> None:
        """What the UI's Terminate button sends; ``force`` is its "Force termination
        immediately" box, the only way Dagster cancels a run that is still STARTING."""
        policy = "MARK_AS_CANCELED_IMMEDIATELY" if force else "SAFE_TERMINATE"
        variables = {"runId": run_id, "policy": policy}
        result = self.query(TERMINATE_MUTATION, variables)["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise RuntimeError(f"terminating run {run_id}: {result}")

    def set_pool_limit(self, pool: str, limit: int) -> None:
        """What the UI's Pools page does (or `dagster instance concurrency set`)."""
        self.query(SET_POOL_LIMIT_MUTATION, {"pool": pool, "limit": limit})

    def pool(self, pool: str) -> dict[str, Any]:
        """A pool's limit, who holds its slots and which steps wait for one."""
        return self.query(POOL_QUERY, {"pool": pool})["instance"]["concurrencyLimit"]

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.query(EVENTS_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"]
            if page["__typename"] != "EventConnection":
                raise RuntimeError(f"events of run {run_id}: {page}")
            events.extend(page["events"])
            cursor = page["cursor"]
            if not page["hasMore"]:
                return events

    def step_workers(self, run_id: str) -> dict[str, str]:
        """Step key -> the Celery worker (node name) that executed it, from the run's events."""
        workers = {}
        for event in self.run_events(run_id):
            entries = {e["label"]: e.get("text") for e in event.get("metadataEntries") or []}
            if event.get("stepKey") and entries.get("Celery worker"):
                workers[event["stepKey"]] = entries["Celery worker"]
        return workers

    def captured_logs(self, run_id: str) -> dict[str, dict[str, str]]:
        """Per step: its captured stdout and stderr, read by the webserver from wherever the
        instance's compute log manager keeps them (the object store)."""
        logs = {}
        for event in self.run_events(run_id):
            if event["__typename"] != "LogsCapturedEvent":
                continue
            key = [run_id, "compute_logs", event["fileKey"]]
            captured = self.query(CAPTURED_LOGS_QUERY, {"logKey": key})["capturedLogs"]
            for step in event.get("stepKeys") or [event["fileKey"]]:
                logs[step] = {
                    "stdout": captured["stdout"] or "",
                    "stderr": captured["stderr"] or "",
                }
        return logs

    def job_metadata(self, location: str, job: str) -> dict[str, Any]:
        """A job's definition metadata, as the code server that loaded it reports it."""
        selector = {
            "pipelineName": job,
            "repositoryName": "__repository__",
            "repositoryLocationName": location,
        }
        found = self.query(JOB_METADATA_QUERY, {"selector": selector})["pipelineOrError"]
        if found["__typename"] != "Pipeline":
            raise RuntimeError(f"{location}/{job}: {found}")
        return {entry["label"]: _entry_value(entry) for entry in found["metadataEntries"]}

    def output_metadata(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per step (outputs) or asset (materializations): their metadata by label."""
        events = self.query(STEP_OUTPUT_METADATA_QUERY, {"runId": run_id})["logsForRun"]["events"]
        found: dict[str, dict[str, Any]] = {}
        for event in events:
            if event["__typename"] == "MaterializationEvent":
                key = "/".join(event["assetKey"]["path"])
            elif event["__typename"] == "ExecutionStepOutputEvent":
                key = event["stepKey"]
            else:
                continue
            found.setdefault(key, {}).update(
                {entry["label"]: _entry_value(entry) for entry in event["metadataEntries"]}
            )
        return found

    def locations(self) -> dict[str, LocationStatus]:
        workspace = self.query(LOCATIONS_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise RuntimeError(f"workspace: {workspace}")
        statuses = {}
        for entry in workspace["locationEntries"]:
            loaded = entry["locationOrLoadError"] or {}
            error = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
            statuses[entry["name"]] = LocationStatus(entry["name"], entry["loadStatus"], error)
        return statuses

    def wait_for_locations(self, names: list[str], timeout: float = 90.0) -> dict:
        """Every named code location LOADED, or TimeoutError naming their states. A UI not
        answering yet (its proxy or webserver restarting) is waited for too."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                statuses: dict | str = self.locations()
            except (requests.ConnectionError, requests.HTTPError) as error:
                statuses = f"the UI did not answer: {error}"
            if isinstance(statuses, dict) and all(
                name in statuses and statuses[name].healthy for name in names
            ):
                return statuses
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"code locations not all LOADED after {timeout:.0f}s: {statuses}"
                )
            time.sleep(0.5)

    def reload_location(self, name: str) -> None:
        self.dagster.reload_repository_location(name)
