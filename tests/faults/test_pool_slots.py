"""A worker killed while its step holds a pool slot: the slot is freed, the waiting step runs."""

import time

import pytest

from dagster_team_celery.probes import PROBE_POOL, pool_run_config
from devstack.processes import wait_until
from tests.faults.conftest import failure_messages, kill_worker_role, wait_for_terminal
from tests.pools import started_steps

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]

LOST_WORKER_TIMEOUT = 15.0


def holds_slot(client, run_id: str) -> bool:
    return any(slot["runId"] == run_id for slot in client.pool(PROBE_POOL)["claimedSlots"])


def test_a_lost_workers_slot_is_freed_for_the_step_waiting_on_it(fault_stack, fault_client):
    fault_client.set_pool_limit(PROBE_POOL, 1)
    run_config = {
        **pool_run_config(120),
        "execution": {"config": {"lost_worker_timeout_seconds": LOST_WORKER_TIMEOUT}},
    }
    # No automatic retry: run_retries would start the failed holder again, and its 120 s steps
    # would still hold the pool and the bakery's worker in the scenarios that follow.
    holder = fault_client.submit_job(
        "bakery", "probe_pool", run_config=run_config, tags={"dagster/max_retries": "0"}
    )
    assert wait_until(lambda: fault_client.pool(PROBE_POOL)["activeSlotCount"] == 1, 120)
    waiting = fault_client.submit_job("ml", "probe_pool", run_config=pool_run_config(0.2))
    time.sleep(3)
    assert not started_steps(fault_client, waiting, "pooled_"), "started without a slot"
    assert wait_until(lambda: started_steps(fault_client, holder, "pooled_"), 60)

    kill_worker_role(fault_stack, "bakery", "steps", replace=False)
    killed_at = time.monotonic()
    assert wait_until(lambda: not holds_slot(fault_client, holder), 120, interval=0.2)
    freed = time.monotonic() - killed_at
    assert wait_until(lambda: started_steps(fault_client, waiting, "pooled_"), 120, interval=0.2)
    handed_over = time.monotonic() - killed_at

    holder_status, _ = wait_for_terminal(fault_client, holder, timeout=120)
    print(
        f"\nworker killed holding the slot: slot freed {freed:.1f}s later (lost-worker timeout "
        f"{LOST_WORKER_TIMEOUT:.0f}s), ml's queued run started its pooled step "
        f"{handed_over:.1f}s later; the holder ended {holder_status}"
    )
    assert holder_status == "FAILURE"
    assert "bakery@" in failure_messages(fault_client, holder)
    assert wait_for_terminal(fault_client, waiting, timeout=120)[0] == "SUCCESS"
    # Detection takes two missed checks (5 s apart), then the timeout runs.
    assert freed < LOST_WORKER_TIMEOUT + 15
    assert fault_client.pool(PROBE_POOL)["activeSlotCount"] == 0
