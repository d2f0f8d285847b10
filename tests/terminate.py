"""Terminate a run as the UI's button does, and measure what follows, in either mode."""

import re
import time
from dataclasses import dataclass

import pytest
import requests

from dagster_team_celery.control import team_app
from devstack.graphql_client import PlatformClient

SLEEPING = re.compile(r"Sleeping \S+s in process (\d+) on (\S+)")


@dataclass
class Termination:
    status: str
    request_seconds: float  # until terminateRun answered
    canceled_seconds: float  # from the click until the run was CANCELED


def wait_for_event(client: PlatformClient, run_id: str, pattern: re.Pattern, timeout=300):
    """The first match in the run's event log; the timeout is a hang guard, not a bar (a run's
    events come minutes late when the lanes of `make test` load both cores)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.run_events(run_id):
            found = pattern.search(event.get("message") or "")
            if found:
                return found
        time.sleep(1)
    pytest.fail(f"run {run_id} never logged {pattern.pattern!r}")


def step_successes(client: PlatformClient, run_id: str) -> int:
    events = client.run_events(run_id)
    return sum(event["__typename"] == "ExecutionStepSuccessEvent" for event in events)


def wait_for_successes(client: PlatformClient, run_id: str, count: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while step_successes(client, run_id) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} did not finish {count} steps in {timeout:.0f}s")
        time.sleep(0.3)


def assert_canceled_promptly(result: "Termination") -> None:
    """CANCELED well before the step's 120 s sleep would have ended, and the click answered
    without waiting for the step to stop. Loose bars (the suites share two busy cores): they
    tell a terminated step from one left running; `make bench` and the logs give the times."""
    assert result.status == "CANCELED"
    assert result.canceled_seconds < 60
    assert result.request_seconds < 10


def terminate(
    client: PlatformClient, run_id: str, timeout: float = 90, force: bool = False
) -> Termination:
    clicked = time.monotonic()
    client.terminate_run(run_id, force=force)
    request_seconds = time.monotonic() - clicked
    status = client.wait_for_run(run_id, timeout=timeout, poll=0.1)
    return Termination(status, request_seconds, time.monotonic() - clicked)


def active_tasks(team: str, broker_url: str) -> dict[str, list]:
    """Every worker's running tasks, as `celery inspect active` reports them."""
    return inspect_workers(team, broker_url, "active")


def inspect_workers(team: str, broker_url: str, query: str) -> dict:
    """Worker name -> its answer to `celery inspect <query>`, from the team's workers that
    answer within 3 s."""
    app = team_app(team, broker=broker_url, backend=broker_url)
    try:
        return getattr(app.control.inspect(timeout=3.0), query)() or {}
    finally:
        app.close()


def terminate_unfinished(client: PlatformClient, run_ids: list[str]) -> None:
    """Cleanup: end every run that is still going. A plain Terminate asks the run's code server
    to cancel it, and on a loaded machine that call can time out (the mutation answers 500);
    force termination, which marks the run canceled, is what the UI offers next."""
    for run_id in run_ids:
        status = client.run(run_id)["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            continue
        try:
            terminate(client, run_id, force=status in ("STARTING", "NOT_STARTED"))
        except requests.HTTPError as error:
            print(f"terminate {run_id} ({status}) failed ({error}); forcing it")
            terminate(client, run_id, force=True)


def sleep_config(seconds: float) -> dict:
    return {"ops": {"sleep_then_report": {"config": {"seconds": seconds}}}}
