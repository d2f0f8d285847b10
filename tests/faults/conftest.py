"""One local stack for the whole fault suite; every scenario leaves it healthy again."""

import contextlib
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass

import psutil
import pytest

from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack
from devstack.processes import wait_until
from tests.stack_helpers import fresh_stack, loaded_client
from tests.terminate import inspect_workers

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="package")
def fault_stack(request):
    with fresh_stack("faults", request.session) as stack:
        yield stack


@pytest.fixture(scope="package")
def fault_client(fault_stack) -> PlatformClient:
    return loaded_client(fault_stack)


# Workers' parents a scenario froze (SIGSTOP) so that they fork no replacement.
FROZEN_PARENTS: list[int] = []


@pytest.fixture(autouse=True)
def healthy_again(fault_stack):
    """Whatever a scenario broke, the next one starts from a healthy stack."""
    yield
    while FROZEN_PARENTS:
        with contextlib.suppress(ProcessLookupError):
            os.kill(FROZEN_PARENTS.pop(), signal.SIGCONT)  # it forks the replacement now
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


def worker_pids(stack: LocalStack, team: str) -> dict[str, int]:
    """The pid of the main process of each of the team's Celery workers that answers, by role
    (steps, runs), from `celery inspect stats`."""
    stats = inspect_workers(team, stack.team_env(team)["DAGSTER_CELERY_BROKER_URL"], "stats")
    roles = {team: "steps", f"{team}-runs": "runs"}
    return {roles[name.split("@")[0]]: info["pid"] for name, info in stats.items()}


def kill_worker_role(stack: LocalStack, team: str, role: str, replace: bool = True) -> int:
    """SIGKILL one of the team's workers (steps or runs) with its pool, as when the kernel's
    OOM killer takes it: the workers' parent forks a new one (wait_for_new_worker). With
    ``replace=False`` the parent is frozen first, so the team is left without that worker
    until the scenario ends. Returns the killed worker's pid."""
    pid = worker_pids(stack, team)[role]
    if not replace:
        parent = stack.services[f"{team}-worker"].pid
        os.kill(parent, signal.SIGSTOP)
        FROZEN_PARENTS.append(parent)
    worker = psutil.Process(pid)
    processes = [*worker.children(recursive=True), worker]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=10)
    return pid


def wait_for_new_worker(stack: LocalStack, team: str, role: str, old_pid: int) -> bool:
    return wait_until(
        lambda: worker_pids(stack, team).get(role) not in (None, old_pid), 120, interval=1
    )


def failure_messages(client: PlatformClient, run_id: str) -> str:
    """The run's failure, engine and step failure messages, with each step's error and the
    errors that caused it."""

    def lines(event: dict) -> list[str]:
        error = event.get("error") or {}
        causes = [cause.get("message") for cause in error.get("causes") or []]
        return [m for m in (event.get("message"), error.get("message"), *causes) if m]

    return "\n".join(
        "\n".join(lines(event))
        for event in client.run_events(run_id)
        if event["__typename"] in ("RunFailureEvent", "ExecutionStepFailureEvent", "EngineEvent")
    )


def non_terminal_runs(client: PlatformClient) -> list[dict]:
    runs = client.query("{ runsOrError { ... on Runs { results { runId status } } } }")
    return [run for run in runs["runsOrError"]["results"] if run["status"] not in TERMINAL]
