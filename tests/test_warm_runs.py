"""Runs start in each team's warm run worker (local mode): a run process that dies fails its run
within a minute, with a message naming what died, and takes no other run or the pool with it;
a team runs its limit of runs at once; a redeploy drains the team's runs in flight."""

import os
import re
import signal
import threading
import time

import pytest

from devstack.processes import wait_until
from tests.faults.conftest import failure_messages, kill_hard
from tests.repo import load_script
from tests.terminate import SLEEPING, wait_for_event

pytestmark = pytest.mark.local_stack

RUN_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\) in warm run worker (\S+)\.")
# The monitoring daemon checks every 10 s (dagster.yaml); the bar is a minute.
FAILED_WITHIN_SECONDS = 60
TEAM_RUN_LIMIT = 4  # dagster.yaml's tag_concurrency_limits per code location


def sleep_config(seconds: float) -> dict:
    return {"ops": {"sleep_then_report": {"config": {"seconds": seconds}}}}


def start_sleeping_run(client, seconds: float) -> tuple[str, int]:
    """A run whose step is sleeping; returns the run and its run process's pid."""
    run_id = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(seconds))
    pid = int(wait_for_event(client, run_id, RUN_PROCESS).group(1))
    wait_for_event(client, run_id, SLEEPING)
    return run_id, pid


def wait_for_failure(client, run_id: str, since: float) -> float:
    assert client.wait_for_run(run_id, timeout=FAILED_WITHIN_SECONDS + 30) == "FAILURE"
    return time.monotonic() - since


@pytest.mark.parametrize(
    ("signal_number", "named_as"),
    [(signal.SIGKILL, "signal 9 (SIGKILL)"), (signal.SIGSEGV, "signal 11 (SIGSEGV)")],
    ids=["killed", "segfault"],
)
def test_a_dead_run_process_fails_its_run_and_spares_the_other_runs_and_the_pool(
    client, signal_number, named_as
):
    victim, pid = start_sleeping_run(client, 15)
    bystander, _ = start_sleeping_run(client, 6)

    died_at = time.monotonic()
    os.kill(pid, signal_number)
    seconds = wait_for_failure(client, victim, died_at)
    print(f"\nrun process {pid} got signal {signal_number}: run FAILURE after {seconds:.1f}s")
    assert seconds < FAILED_WITHIN_SECONDS
    assert named_as in failure_messages(client, victim)

    assert client.wait_for_run(bystander, timeout=120) == "SUCCESS"
    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=120) == "SUCCESS"


def test_a_killed_run_worker_fails_its_runs_and_its_replacement_runs_the_next(local_stack, client):
    victim, _ = start_sleeping_run(client, 15)
    died_at = time.monotonic()
    kill_hard(local_stack, "bakery-runs")  # the supervisor restarts it, as compose would
    seconds = wait_for_failure(client, victim, died_at)
    print(f"\nrun worker killed: its run FAILURE after {seconds:.1f}s")
    assert seconds < FAILED_WITHIN_SECONDS
    assert "no longer runs this run" in failure_messages(client, victim)

    assert wait_until(local_stack.services["bakery-runs"].is_ready, 120)
    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=120) == "SUCCESS"


def test_a_team_runs_its_limit_at_once_and_the_next_run_waits_queued(client):
    runs = [
        client.submit_job("bakery", "probe_sleep", run_config=sleep_config(8))
        for _ in range(TEAM_RUN_LIMIT + 1)
    ]
    most_started, seen_queued = 0, False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = [client.run(run_id)["status"] for run_id in runs]
        most_started = max(most_started, statuses.count("STARTED"))
        seen_queued = seen_queued or ("QUEUED" in statuses and most_started == TEAM_RUN_LIMIT)
        if all(status in ("SUCCESS", "FAILURE", "CANCELED") for status in statuses):
            break
        time.sleep(0.2)
    print(f"\nruns: {statuses}; at most {most_started} started at once")
    assert statuses == ["SUCCESS"] * len(runs)
    assert most_started == TEAM_RUN_LIMIT
    assert seen_queued


def test_a_redeploy_drains_the_teams_run_in_flight_and_the_next_run_starts(local_stack, client):
    redeploy = load_script("redeploy")
    in_flight, pid = start_sleeping_run(client, 10)
    report: dict = {}
    redeploying = threading.Thread(
        target=lambda: report.update(done=redeploy.redeploy_local(local_stack.state, "bakery"))
    )
    redeploying.start()
    assert client.wait_for_run(in_flight, timeout=180) == "SUCCESS"
    redeploying.join(240)
    assert "done" in report, "the redeploy did not finish"
    assert report["done"].new_pids["bakery-runs"] != report["done"].old_pids["bakery-runs"]

    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=120) == "SUCCESS"
    new_pid = int(wait_for_event(client, after, RUN_PROCESS).group(1))
    assert new_pid != pid
