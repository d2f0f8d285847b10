"""Terminate in the UI stops a run and its Celery steps (local process mode).

Before the fix, a terminated `probe_sleep` slept on for its 120 s and the run ended SUCCESS.
"""

import time

import pytest
from psutil import pid_exists

from dagster_team_celery.probes import FAN_OUT_WIDTH, fan_out_run_config
from devstack.processes import wait_until
from tests.terminate import (
    SLEEPING,
    active_tasks,
    assert_canceled_promptly,
    sleep_config,
    step_successes,
    terminate,
    terminate_unfinished,
    wait_for_event,
    wait_for_successes,
)

pytestmark = pytest.mark.local_stack


def test_terminate_stops_a_sleeping_step_and_cancels_the_run(local_stack, client):
    run_id = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(120))
    pid = int(wait_for_event(client, run_id, SLEEPING).group(1))
    assert pid_exists(pid)

    result = terminate(client, run_id)
    clicked = time.monotonic() - result.canceled_seconds
    assert wait_until(lambda: not pid_exists(pid), 30), f"step process {pid} still alive"
    step_gone = time.monotonic() - clicked

    print(
        f"\nlocal terminate: request {result.request_seconds:.2f}s, {result.status} after "
        f"{result.canceled_seconds:.2f}s, step process gone after {step_gone:.2f}s"
    )
    assert_canceled_promptly(result)
    output = local_stack.shared / "storage" / run_id / "sleep_then_report" / "result"
    assert not output.exists(), "a terminated step wrote its output"


def test_terminate_stops_a_fan_out_midway(local_stack, client):
    run_id = client.submit_job("bakery", "probe_fan_out", run_config=fan_out_run_config(2.0))
    wait_for_successes(client, run_id, 2)

    result = terminate(client, run_id)
    done = step_successes(client, run_id)
    broker = local_stack.team_env("bakery")["DAGSTER_CELERY_BROKER_URL"]
    running = lambda: active_tasks("bakery", broker)  # noqa: E731
    assert wait_until(lambda: not any(running().values()), 30), running()
    time.sleep(3)  # a step that escaped would finish and report by now

    print(
        f"\nlocal fan-out terminate: request {result.request_seconds:.2f}s, {result.status} "
        f"after {result.canceled_seconds:.2f}s with {done}/{FAN_OUT_WIDTH} steps done"
    )
    assert_canceled_promptly(result)
    assert done < FAN_OUT_WIDTH
    assert step_successes(client, run_id) == done, "a step finished after the run was canceled"


def test_terminating_a_queued_or_starting_run_cancels_it(local_stack, client):
    # Runs held back by the team's run limit stay QUEUED; Terminate cancels them where they are.
    blockers = [
        client.submit_job("bakery", "probe_sleep", run_config=sleep_config(60)) for _ in range(4)
    ]
    queued = client.submit_job("bakery", "probe_ping")
    try:
        assert wait_until(lambda: client.run(queued)["status"] == "QUEUED", 30)
        time.sleep(2)
        assert client.run(queued)["status"] == "QUEUED"
        result = terminate(client, queued)
        print(f"\nqueued run: {result.status} after {result.canceled_seconds:.2f}s")
        assert result.status == "CANCELED"
    finally:
        terminate_unfinished(client, blockers)

    # Dagster refuses a plain Terminate while a run's process starts (STARTING); the UI's
    # "Force termination" cancels it, and the run process then never runs a step.
    starting = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(60))
    assert wait_until(lambda: client.run(starting)["status"] != "QUEUED", 30, interval=0.05)
    terminate_unfinished(client, [starting])
    time.sleep(8)
    events = {event["__typename"] for event in client.run_events(starting)}
    assert client.run(starting)["status"] == "CANCELED"
    assert "ExecutionStepStartEvent" not in events, events
