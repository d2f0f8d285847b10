"""Runs start in each team's warm run worker (local mode): a run process that dies is resumed,
with a message naming what killed it, and takes no other run or the pool with it; a team runs
its limit of runs at once; a redeploy drains the team's runs in flight."""

import os
import re
import signal
import threading
import time

import pytest

from devstack.processes import wait_until
from scripts import redeploy
from tests.faults.conftest import (
    kill_hard,
    kill_worker_role,
    wait_for_new_worker,
)
from tests.terminate import SLEEPING, wait_for_event

pytestmark = pytest.mark.local_stack

RUN_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\) in warm run worker (\S+)\.")
RESUMED_PROCESS = re.compile(r"Resumed process for run \(pid: (\d+)\) in warm run worker (\S+)")
# Run monitoring checks every 5 s (dagster.yaml) and resumes a dead run process's run; with the
# resumed process's start and the rest of the step, a minute is plenty.
# A hang guard, not a speed target (the bench measures resume times): a resumed run waits
# for its worker's replacement, which starts slowly while other suites share the cores.
RESUMED_WITHIN_SECONDS = 180
TEAM_RUN_LIMIT = 4  # dagster.yaml's tag_concurrency_limits per code location


def sleep_config(seconds: float) -> dict:
    return {"ops": {"sleep_then_report": {"config": {"seconds": seconds}}}}


def start_sleeping_run(client, seconds: float) -> tuple[str, int]:
    """A run whose step is sleeping; returns the run and its run process's pid."""
    run_id = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(seconds))
    pid = int(wait_for_event(client, run_id, RUN_PROCESS).group(1))
    wait_for_event(client, run_id, SLEEPING)
    return run_id, pid


def wait_for_resumed_success(client, run_id: str, since: float) -> float:
    assert client.wait_for_run(run_id, timeout=RESUMED_WITHIN_SECONDS) == "SUCCESS"
    wait_for_event(client, run_id, RESUMED_PROCESS, timeout=5)
    return time.monotonic() - since


def monitoring_messages(client, run_id: str) -> str:
    """Run monitoring's engine events: what it found, and that it resumed the run."""
    return "\n".join(event.get("message") or "" for event in client.run_events(run_id))


@pytest.mark.parametrize(
    ("signal_number", "named_as"),
    [(signal.SIGKILL, "signal 9 (SIGKILL)"), (signal.SIGSEGV, "signal 11 (SIGSEGV)")],
    ids=["killed", "segfault"],
)
def test_a_dead_run_process_is_resumed_and_spares_the_other_runs_and_the_pool(
    client, signal_number, named_as
):
    victim, pid = start_sleeping_run(client, 20)
    # In flight beside the victim: its own run process started. (Not waiting for its step to
    # sleep: a step the previous case's killed run left running may hold a step process, and
    # the bystander's step would wait for the victim's to end.)
    bystander = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(6))
    wait_for_event(client, bystander, RUN_PROCESS)

    died_at = time.monotonic()
    assert client.run(victim)["status"] == "STARTED", "the victim must die mid-run"
    os.kill(pid, signal_number)
    seconds = wait_for_resumed_success(client, victim, died_at)
    print(f"\nrun process {pid} got signal {signal_number}: resumed, SUCCESS after {seconds:.1f}s")
    # Monitoring says why it resumed the run.
    assert named_as in monitoring_messages(client, victim)

    assert client.wait_for_run(bystander, timeout=120) == "SUCCESS"
    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=120) == "SUCCESS"


def test_a_killed_run_worker_has_its_run_resumed_by_its_replacement(local_stack, client):
    victim, _ = start_sleeping_run(client, 15)
    died_at = time.monotonic()
    # The run worker alone, with its pool: its parent forks a new one from its preloaded state.
    old_pid = kill_worker_role(local_stack, "bakery", "runs")
    seconds = wait_for_resumed_success(client, victim, died_at)
    print(f"\nrun worker killed: its run resumed, SUCCESS after {seconds:.1f}s")
    assert "stopped beating" in monitoring_messages(client, victim) or (
        "SIGKILL" in monitoring_messages(client, victim)
    )
    assert wait_for_new_worker(local_stack, "bakery", "runs", old_pid)


def test_a_dead_worker_service_has_its_run_resumed_once_the_supervisor_brings_it_back(
    local_stack, client
):
    """The whole service (parent, step worker, run worker), as when its container dies."""
    victim, _ = start_sleeping_run(client, 15)
    died_at = time.monotonic()
    kill_hard(local_stack, "bakery-worker")
    seconds = wait_for_resumed_success(client, victim, died_at)
    print(f"\nworker service killed: its run resumed, SUCCESS after {seconds:.1f}s")
    assert "stopped beating" in monitoring_messages(client, victim)
    assert wait_until(local_stack.services["bakery-worker"].is_ready, 120)


def test_a_team_runs_its_limit_at_once_and_the_next_run_waits_queued(client):
    runs = [
        # Long enough that all four are in progress at once for a while, however slowly each
        # poll of five statuses answers on a loaded machine (the step worker sleeps two at a
        # time).
        client.submit_job("bakery", "probe_sleep", run_config=sleep_config(20))
        for _ in range(TEAM_RUN_LIMIT + 1)
    ]
    # The limit counts a run from its launch (STARTING) to its end, as the run queue does.
    in_progress = ("STARTING", "STARTED")
    most_in_progress, seen_queued = 0, False
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = [client.run(run_id)["status"] for run_id in runs]
        now = sum(status in in_progress for status in statuses)
        most_in_progress = max(most_in_progress, now)
        seen_queued = seen_queued or ("QUEUED" in statuses and now == TEAM_RUN_LIMIT)
        if all(status in ("SUCCESS", "FAILURE", "CANCELED") for status in statuses):
            break
        time.sleep(0.2)
    print(f"\nruns: {statuses}; at most {most_in_progress} in progress at once")
    assert statuses == ["SUCCESS"] * len(runs)
    assert most_in_progress == TEAM_RUN_LIMIT
    assert seen_queued


def test_a_redeploy_drains_the_teams_run_in_flight_and_the_next_run_starts(local_stack, client):
    in_flight, pid = start_sleeping_run(client, 10)
    report: dict = {}
    redeploying = threading.Thread(
        target=lambda: report.update(done=redeploy.redeploy_local(local_stack.state, "bakery"))
    )
    redeploying.start()
    assert client.wait_for_run(in_flight, timeout=180) == "SUCCESS"
    redeploying.join(240)
    assert "done" in report, "the redeploy did not finish"
    assert report["done"].new_pids["bakery-worker"] != report["done"].old_pids["bakery-worker"]

    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=120) == "SUCCESS"
    new_pid = int(wait_for_event(client, after, RUN_PROCESS).group(1))
    assert new_pid != pid
