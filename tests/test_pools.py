"""Dagster concurrency pools hold on Celery, across runs and teams (local process mode).

Stock dagster-celery claims slots but never reports blocked steps and never frees the slot of
a step whose task failed, was revoked or lost its worker; these tests pin the platform's loop.
"""

import statistics
import time

import pytest

from dagster_team_celery.probes import POOL_WIDTH, PROBE_POOL, pool_run_config
from devstack.processes import wait_until
from tests.pools import blocked_messages, handover_gaps, max_overlap, started_steps, step_spans
from tests.terminate import terminate

pytestmark = pytest.mark.local_stack


@pytest.fixture
def pool_limit(client):
    def set_limit(limit: int) -> None:
        client.set_pool_limit(PROBE_POOL, limit)

    yield set_limit
    client.set_pool_limit(PROBE_POOL, 1)


def waits_for_pool(client, run_id: str) -> bool:
    return client.run(run_id)["status"] == "QUEUED" or blocked_messages(client, run_id) >= 1


def run_both_teams(client, seconds: float) -> list[str]:
    run_ids = [
        client.submit_job(team, "probe_pool", run_config=pool_run_config(seconds))
        for team in ("bakery", "ml")
    ]
    for run_id in run_ids:
        assert client.wait_for_run(run_id, timeout=300) == "SUCCESS", run_id
    return run_ids


def test_limit_one_never_runs_two_pooled_steps_at_once_across_teams(client, pool_limit):
    pool_limit(1)
    run_ids = run_both_teams(client, seconds=1.0)

    spans = step_spans(client, run_ids, "pooled_")
    peak, _ = max_overlap(spans)
    gaps = handover_gaps(spans)
    print(
        f"\npool limit 1: {len(spans)} steps, at most {peak} at once; slot freed -> next step "
        f"started: median {statistics.median(gaps):.2f}s, max {max(gaps):.2f}s"
    )
    assert len(spans) == 2 * POOL_WIDTH
    assert peak == 1
    # The steps that waited said so, in the run's log (what the UI shows).
    assert sum(blocked_messages(client, run_id) for run_id in run_ids) >= 1
    assert client.pool(PROBE_POOL)["activeSlotCount"] == 0, "a finished run still holds a slot"


def test_limit_two_runs_two_at_once_and_never_three(client, pool_limit):
    pool_limit(2)
    run_ids = run_both_teams(client, seconds=1.5)

    peak, times = max_overlap(step_spans(client, run_ids, "pooled_"))
    print(f"\npool limit 2: at most {peak} pooled steps at once, {times} times")
    assert peak == 2
    assert times >= 1


def test_terminating_a_run_frees_its_slot_for_the_waiting_team(client, pool_limit):
    pool_limit(1)
    holder = client.submit_job("bakery", "probe_pool", run_config=pool_run_config(120))
    assert wait_until(lambda: client.pool(PROBE_POOL)["activeSlotCount"] == 1, 120)
    waiting = client.submit_job("ml", "probe_pool", run_config=pool_run_config(0.2))
    # Dagster's queue holds a run whose pooled steps could not start (the UI shows it queued,
    # blocked by the pool); a run already going reports its blocked steps instead.
    assert wait_until(lambda: waits_for_pool(client, waiting), 120), "never shown waiting"
    time.sleep(3)
    assert not started_steps(client, waiting, "pooled_"), "started without a slot"

    result = terminate(client, holder)
    freed_at = time.monotonic() - result.canceled_seconds
    assert wait_until(lambda: started_steps(client, waiting, "pooled_"), 60, interval=0.1)
    handed_over = time.monotonic() - freed_at

    print(f"\nterminated the slot holder: ml's pooled step started {handed_over:.2f}s later")
    assert result.status == "CANCELED"
    assert client.wait_for_run(waiting, timeout=120) == "SUCCESS"
    assert handed_over < 30
