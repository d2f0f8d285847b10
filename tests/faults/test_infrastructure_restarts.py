"""Redis, Postgres and the object store restarted while a run is in flight."""

import time

import pytest
import requests

from dagster_team_celery.probes import fan_out_run_config
from devstack.processes import wait_until
from tests.faults.conftest import (
    failure_messages,
    non_terminal_runs,
    wait_for_progress,
    wait_for_terminal,
)
from tests.stack_helpers import large_output_crosses_steps

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]


def everything_answers(stack, client) -> bool:
    try:
        if requests.get(f"{stack.webserver_url}/server_info", timeout=5).status_code != 200:
            return False
        if not all(status.healthy for status in client.locations().values()):
            return False
    except Exception:
        return False
    return all(service.is_ready() for service in stack.services.values())


def test_redis_restart_mid_run(fault_stack, fault_client):
    run_id = fault_client.submit_job("ml", "probe_fan_out", run_config=fan_out_run_config(1.0))
    wait_for_progress(fault_client, run_id, successes=5)

    restarted_at = time.monotonic()
    fault_stack.restart_service("redis")
    assert wait_until(lambda: everything_answers(fault_stack, fault_client), 60)
    recovered_after = time.monotonic() - restarted_at

    status, _ = wait_for_terminal(fault_client, run_id, timeout=600)
    print(f"\nredis restart: services answering {recovered_after:.1f}s later; run {status}")
    if status != "SUCCESS":
        messages = failure_messages(fault_client, run_id)
        print(f"why the run failed:\n{messages[-3000:]}")
        assert "broker" in messages
    follow_up = fault_client.submit_job("ml", "probe_ping")
    assert fault_client.wait_for_run(follow_up, timeout=180) == "SUCCESS"


def test_postgres_restart_mid_run(fault_stack, fault_client):
    run_id = fault_client.submit_job("bakery", "probe_fan_out", run_config=fan_out_run_config(1.0))
    wait_for_progress(fault_client, run_id, successes=5)

    restarted_at = time.monotonic()
    fault_stack.restart_service("postgres")
    assert wait_until(lambda: everything_answers(fault_stack, fault_client), 30), (
        "webserver, daemon, code servers and workers did not all recover within 30s"
    )
    recovered_after = time.monotonic() - restarted_at

    status, _ = wait_for_terminal(fault_client, run_id, timeout=600)
    print(f"\npostgres restart: everything answered {recovered_after:.1f}s later; run {status}")
    assert wait_until(lambda: not non_terminal_runs(fault_client), 300), non_terminal_runs(
        fault_client
    )
    follow_up = fault_client.submit_job("bakery", "probe_ping")
    assert fault_client.wait_for_run(follow_up, timeout=180) == "SUCCESS"


def test_object_store_restart_mid_run(fault_stack, fault_client):
    """Every step's output and captured log goes to the object store: restarted mid-run, the
    run completes (the clients retry), or fails naming the store; nothing half-written is read."""
    run_id = fault_client.submit_job("ml", "probe_fan_out", run_config=fan_out_run_config(1.0))
    wait_for_progress(fault_client, run_id, successes=5)

    restarted_at = time.monotonic()
    fault_stack.restart_service("object-store")
    recovered_after = time.monotonic() - restarted_at

    status, _ = wait_for_terminal(fault_client, run_id, timeout=600)
    print(f"\nobject store restart: serving {recovered_after:.1f}s later; run {status}")
    if status != "SUCCESS":
        messages = failure_messages(fault_client, run_id)
        print(f"why the run failed:\n{messages[-3000:]}")
        assert fault_stack.object_store_url in messages
    # Outputs written across the restart are whole: a large one crosses two steps intact.
    large_output_crosses_steps(fault_client, "ml", size_mb=8)
