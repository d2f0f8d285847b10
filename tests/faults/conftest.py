"""One local stack for the whole fault suite; every scenario leaves it healthy again."""

import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from devstack.client import PlatformClient
from devstack.processes import wait_until
from devstack.stack import LocalStack
from tests.stacks import start_stack, stop_stack, wait_for_loaded_locations

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="package")
def fault_stack(request):
    stack = start_stack("faults")
    yield stack
    stop_stack(stack, request.session)


@pytest.fixture(scope="package")
def fault_client(fault_stack) -> PlatformClient:
    client = PlatformClient(fault_stack.webserver_url)
    wait_for_loaded_locations(client, fault_stack.teams)
    return client


@pytest.fixture(autouse=True)
def healthy_again(fault_stack):
    """Whatever a scenario broke, the next one starts from a healthy stack."""
    yield
    for service in fault_stack.services.values():
        service.restart = True
        if not service.is_running():
            service.start()
    assert wait_until(
        lambda: all(service.is_ready() for service in fault_stack.services.values()), 180
    ), {name: service.is_ready() for name, service in fault_stack.services.items()}


@dataclass
class StepCounts:
    starts: Counter
    successes: Counter


def step_counts(client: PlatformClient, run_id: str) -> StepCounts:
    starts, successes = Counter(), Counter()
    for event in client.run_events(run_id):
        if event["__typename"] == "ExecutionStepStartEvent":
            starts[event["stepKey"]] += 1
        elif event["__typename"] == "ExecutionStepSuccessEvent":
            successes[event["stepKey"]] += 1
    return StepCounts(starts, successes)


def wait_for_progress(client: PlatformClient, run_id: str, successes: int, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(step_counts(client, run_id).successes.values()) >= successes:
            return
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not reach {successes} finished steps in {timeout:.0f}s")


def wait_for_terminal(client: PlatformClient, run_id: str, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    status = client.wait_for_run(run_id, timeout=timeout)
    return status, time.monotonic() - started


def kill_hard(stack: LocalStack, service_name: str) -> None:
    """SIGKILL the whole process group, as when a container dies."""
    service = stack.services[service_name]
    assert service.process is not None
    os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait(10)


def failure_messages(client: PlatformClient, run_id: str) -> str:
    return "\n".join(
        event.get("message") or ""
        for event in client.run_events(run_id)
        if event["__typename"] in ("RunFailureEvent", "ExecutionStepFailureEvent", "EngineEvent")
    )


def non_terminal_runs(client: PlatformClient) -> list[dict]:
    runs = client.query("{ runsOrError { ... on Runs { results { runId status } } } }")
    return [run for run in runs["runsOrError"]["results"] if run["status"] not in TERMINAL]
