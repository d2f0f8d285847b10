"""Local mode: the bakery's whole worker service SIGKILLed before any step ran, midway, and after
the last step but before the run ended; each time the run is resumed and ends SUCCESS."""

import os
import signal
import subprocess
import sys

import pytest

from devstack.local_stack import LocalStack
from devstack.processes import wait_until
from tests.faults.conftest import kill_hard
from tests.resume import (
    WorkerService,
    check_killed_after_the_last_step,
    check_killed_before_any_step,
    check_killed_midway,
    stop_consuming_source,
)

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]

TEAM = "bakery"


def local_service(stack: LocalStack) -> WorkerService:
    daemon = stack.services["daemon"]

    def kill() -> None:
        kill_hard(stack, f"{TEAM}-worker")  # the supervisor starts it again, as compose would

    def stop_consuming_steps() -> None:
        subprocess.run(
            [sys.executable, "-c", stop_consuming_source(TEAM)],
            env={**os.environ, **stack.team_env(TEAM)},
            check=True,
            timeout=180,
        )

    return WorkerService(
        kill=kill,
        stop_consuming_steps=stop_consuming_steps,
        freeze_daemon=lambda: os.killpg(daemon.pid, signal.SIGSTOP),
        thaw_daemon=lambda: os.killpg(daemon.pid, signal.SIGCONT),
        freeze_run_process=lambda pid: os.kill(pid, signal.SIGSTOP),
    )


@pytest.fixture
def service(fault_stack) -> WorkerService:
    yield local_service(fault_stack)
    assert wait_until(fault_stack.services[f"{TEAM}-worker"].is_ready, 120)


def test_killed_before_any_step_ran(fault_client, service):
    check_killed_before_any_step(fault_client, TEAM, service)


def test_killed_midway(fault_client, service):
    check_killed_midway(fault_client, TEAM, service)


def test_killed_after_the_last_step_before_the_run_ended(fault_client, service):
    check_killed_after_the_last_step(fault_client, TEAM, service)
