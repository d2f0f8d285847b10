"""A step redelivered under acks_late holds one pool slot, never two.

The orchestrator claims a step's slot once, before submitting it; a worker never claims. So
when a pool process dies mid-step and Celery hands the message out again, the step runs a
second time under the same single claim.
"""

import os
import signal
import threading

import pytest
from celery_team import STARTED_WITHIN_SECONDS, wait_for
from dagster._core.events import DagsterEventType

from dagster_team_celery.probes import POOL_WIDTH, PROBE_POOL, pool_run_config

# Starts real Redis and real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def started_steps(team) -> list[str]:
    """The step keys of every STEP_START of the team's latest run, repeats included."""
    with team.instance() as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return []
        records = instance.get_records_for_run(
            runs[0].run_id, of_type=DagsterEventType.STEP_START
        ).records
        return [record.event_log_entry.step_key for record in records]


def test_a_redelivered_step_runs_again_under_its_one_slot(team):
    team.start_worker()
    # Long enough that the kill below, after an inspect and an event-log read on a loaded
    # machine, still lands while the step runs.
    run = team.start_run("probe_pool", pool_run_config(6.0))
    peak_claims: list[int] = []
    done = threading.Event()

    def sample_claims() -> None:
        with team.instance() as instance:
            while not done.wait(0.05):
                info = instance.event_log_storage.get_concurrency_info(PROBE_POOL)
                peak_claims.append(len(info.claimed_slots))

    sampler = threading.Thread(target=sample_claims)
    sampler.start()
    try:
        task = wait_for(lambda: next(iter(team.active_tasks()), None), STARTED_WITHIN_SECONDS)
        # A task is active before its step starts; kill only once the step has begun, or the
        # redelivered copy is the step's first start and nothing is seen to run twice.
        wait_for(
            lambda: started_steps(team), STARTED_WITHIN_SECONDS, lambda: "no step ever started"
        )
        os.kill(task["worker_pid"], signal.SIGKILL)  # the pool process dies mid-step
        output, _ = run.communicate(timeout=180)
    finally:
        done.set()
        sampler.join()

    assert "STATUS SUCCESS" in output, output[-3000:]
    starts = started_steps(team)
    with team.instance() as instance:
        assert instance.event_log_storage.get_concurrency_info(PROBE_POOL).claimed_slots == []
    rerun = {step for step in starts if starts.count(step) > 1}
    print(f"\nredelivered step(s) {sorted(rerun)}; most slots claimed at once: {max(peak_claims)}")
    assert len(set(starts)) == POOL_WIDTH
    assert rerun, "the killed step was not redelivered"
    assert max(peak_claims) == 1
