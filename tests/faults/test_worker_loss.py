"""A Celery worker killed with SIGKILL in the middle of a 50-step run."""

import re
import time

import pytest

from dagster_team_celery.probes import FAN_OUT_WIDTH, fan_out_run_config
from devstack.processes import wait_until
from tests.faults.conftest import (
    failure_messages,
    kill_worker_role,
    step_counts,
    wait_for_new_worker,
    wait_for_progress,
    wait_for_terminal,
)
from tests.terminate import active_tasks

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]


def test_killed_worker_is_replaced_and_every_step_still_runs(fault_stack, fault_client):
    run_id = fault_client.submit_job("bakery", "probe_fan_out", run_config=fan_out_run_config(1.0))
    wait_for_progress(fault_client, run_id, successes=5)
    # Kill it while it runs one of this run's steps: on a loaded machine it can sit between
    # steps at the moment the fifth success is read, and then nothing would be lost. (A step
    # of an earlier scenario's run must not count.)
    broker = fault_stack.team_env("bakery")["DAGSTER_CELERY_BROKER_URL"]

    def running() -> bool:
        tasks = [task for tasks in active_tasks("bakery", broker).values() for task in tasks]
        # The step's arguments (ExecuteStepArgs, packed into the task's kwargs) name its run.
        return any(run_id in f"{task.get('args')}{task.get('kwargs')}" for task in tasks)

    assert wait_until(running, 60), "the bakery worker never reported a step of the run running"

    old_pid = kill_worker_role(fault_stack, "bakery", "steps")
    killed_at = time.monotonic()
    assert wait_for_new_worker(fault_stack, "bakery", "steps", old_pid), "no worker came back"
    replaced_after = time.monotonic() - killed_at

    status, _ = wait_for_terminal(fault_client, run_id, timeout=300)
    terminal_after = time.monotonic() - killed_at
    counts = step_counts(fault_client, run_id)
    rerun = sorted(step for step, starts in counts.starts.items() if starts > 1)
    print(
        f"\nworker replaced {replaced_after:.1f}s after SIGKILL; run {status} "
        f"{terminal_after:.1f}s after it; steps started again: {rerun}"
    )
    assert status == "SUCCESS", failure_messages(fault_client, run_id)
    assert len(counts.successes) == FAN_OUT_WIDTH
    # Every step that ran again was announced as lost and resubmitted: none ran twice
    # unannounced (a redelivery the worker should have skipped). An announced step may have
    # started only once: the killed worker had taken it without starting it (its steps now take
    # longer, writing their outputs and logs to the object store). Every step succeeded, so
    # none announced was left out.
    messages = failure_messages(fault_client, run_id)
    resubmitted = set(re.findall(r'Resubmitted step "([^"]+)" \(attempt 2\)', messages))
    lost = set(re.findall(r'lost step "([^"]+)"', messages))
    assert rerun, "the killed worker was running steps, so some must have run again"
    assert set(rerun) <= resubmitted == lost, (rerun, resubmitted, lost)


def test_killed_worker_without_replacement_fails_the_run_naming_the_worker(
    fault_stack, fault_client
):
    run_config = {
        **fan_out_run_config(1.0),
        "execution": {"config": {"lost_worker_timeout_seconds": 30.0}},
    }
    run_id = fault_client.submit_job("bakery", "probe_fan_out", run_config=run_config)
    wait_for_progress(fault_client, run_id, successes=5)

    kill_worker_role(fault_stack, "bakery", "steps", replace=False)
    status, after = wait_for_terminal(fault_client, run_id, timeout=300)
    messages = failure_messages(fault_client, run_id)
    print(f"\nno replacement: run {status} {after:.1f}s after the worker was killed")
    assert status == "FAILURE"
    assert 'queue "bakery"' in messages
    assert "bakery@" in messages or "No Celery worker consumed" in messages
