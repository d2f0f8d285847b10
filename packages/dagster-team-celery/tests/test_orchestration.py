"""The platform's execution loop (orchestration.py) against a real Redis and real workers.

Each test names the failure it would catch. They complement the fault suite, which runs the
same situations on the whole local stack.
"""

import subprocess
import sys
import time

import pytest
import redis
from celery import Celery, states
from celery_team import STARTED_WITHIN_SECONDS, TEAM, wait_for

from dagster_team_celery.steps.orchestration import read_states

# Starts real Redis and real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def sleep_run_config(tmp_path, seconds: float, **loop_settings: float) -> dict:
    return {
        "ops": {"sleeper": {"config": {"seconds": seconds, "pid_file": str(tmp_path / "pid")}}},
        "execution": {"config": {"worker_check_interval_seconds": 1.0, **loop_settings}},
    }


def status_of(process, timeout: float) -> str:
    output, _ = process.communicate(timeout=timeout)
    lines = [line for line in output.splitlines() if line.startswith("STATUS ")]
    assert lines, output[-3000:]
    return lines[0].split()[1]


def test_every_in_flight_step_is_read_in_one_round_trip(redis_url):
    # Catches: one GET per step per tick, which made short ticks cost N requests.
    app = Celery(backend=f"{redis_url}/1")
    app.backend.store_result("done", [], states.SUCCESS)
    app.backend.store_result("running", {"hostname": "w@h"}, states.STARTED)
    client = redis.Redis.from_url(f"{redis_url}/1")
    before = client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0)

    found = read_states(app, ["done", "running", "never-seen"])

    assert client.info("commandstats")["cmdstat_mget"]["calls"] == before + 1
    assert [found[key]["status"] for key in ("done", "running", "never-seen")] == [
        states.SUCCESS,
        states.STARTED,
        states.PENDING,
    ]
    assert found["running"]["result"]["hostname"] == "w@h"


def test_a_step_whose_worker_died_is_resubmitted_to_its_replacement(team, tmp_path):
    # Catches: waiting forever for a task whose worker died (dagster-celery's loop does).
    team.start_worker()
    run = team.start_run("sleep_job", sleep_run_config(tmp_path, seconds=8))
    wait_for(
        lambda: (tmp_path / "pid").exists(), STARTED_WITHIN_SECONDS, lambda: "step never started"
    )
    (tmp_path / "pid").unlink()

    team.kill_worker()
    team.start_worker()

    assert status_of(run, timeout=180) == "SUCCESS"
    messages = team.run_messages()
    assert 'lost step "sleeper"' in messages
    assert 'Resubmitted step "sleeper" (attempt 2)' in messages
    assert (tmp_path / "pid").exists(), "the step did not run again"


# A worker's consumer taking the step's message (kombu's ack emulation moves it to the broker's
# unacknowledged set), then dying without a word: no acknowledgement, no restore on close.
TAKE_AND_DIE = """
import os, sys, time
from dagster_team_celery.control import team_app
app = team_app(sys.argv[1], broker=sys.argv[2], backend=sys.argv[3])
deadline = time.monotonic() + 60
with app.connection_for_read() as connection:
    while time.monotonic() < deadline:
        message = connection.default_channel.basic_get(sys.argv[1], no_ack=False)
        if message is not None:
            print(message.headers["id"], flush=True)
            os._exit(0)
        time.sleep(0.1)
os._exit(1)
"""


def test_a_step_taken_by_a_worker_that_died_before_starting_it_is_resubmitted(team, tmp_path):
    # Catches: a run stuck for the broker's visibility timeout (an hour) on a step whose
    # message a killed worker had received but not started (seen in the fault suite).
    run = team.start_run("sleep_job", sleep_run_config(tmp_path, seconds=1))
    taken = subprocess.run(
        [sys.executable, "-c", TAKE_AND_DIE, TEAM, f"{team.redis_url}/0", f"{team.redis_url}/1"],
        env=team.env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert taken.returncode == 0, taken.stdout + taken.stderr
    unacked = redis.Redis.from_url(f"{team.redis_url}/0").hlen(f"team:{TEAM}:unacked")
    assert unacked == 1, "the message must wait where a dead worker leaves it"

    team.start_worker()

    assert status_of(run, timeout=120) == "SUCCESS"
    messages = team.run_messages()
    assert 'A Celery worker that took it before starting it lost step "sleeper"' in messages
    assert 'Resubmitted step "sleeper" (attempt 2)' in messages


def test_a_lost_step_with_no_worker_left_fails_the_run_naming_worker_and_queue(team, tmp_path):
    # Catches: a run that hangs, or fails with a message that does not say what to start.
    team.start_worker()
    run_config = sleep_run_config(tmp_path, seconds=60, lost_worker_timeout_seconds=3.0)
    run = team.start_run("sleep_job", run_config)
    wait_for(
        lambda: (tmp_path / "pid").exists(), STARTED_WITHIN_SECONDS, lambda: "step never started"
    )

    team.kill_worker()
    killed = time.monotonic()

    assert status_of(run, timeout=120) == "FAILURE"
    failed_after = time.monotonic() - killed
    messages = team.run_messages()
    print(f"\nno worker left: run FAILURE {failed_after:.1f}s after the kill")
    assert "Celery worker stopteam@" in messages
    assert 'no worker consumed queue "stopteam" for 3s' in messages
    assert "re-execute the run from failure" in messages


def test_a_short_broker_outage_is_ridden_out(team, tmp_path, redis_server):
    # Catches: failing the run at the first connection error while Redis restarts.
    team.start_worker()
    run = team.start_run("sleep_job", sleep_run_config(tmp_path, seconds=6))
    wait_for(
        lambda: (tmp_path / "pid").exists(), STARTED_WITHIN_SECONDS, lambda: "step never started"
    )

    redis_server.stop()
    time.sleep(3)
    redis_server.start()

    assert status_of(run, timeout=180) == "SUCCESS"
    messages = team.run_messages()
    assert "Lost the Celery broker or result backend" in messages
    assert "Reconnected to the Celery broker after" in messages


def test_a_long_broker_outage_fails_the_run_with_the_fix(team, tmp_path, redis_server):
    # Catches: a run that hangs while Redis is gone, or fails without saying what to check.
    team.start_worker()
    run_config = sleep_run_config(tmp_path, seconds=60, broker_outage_timeout_seconds=3.0)
    run = team.start_run("sleep_job", run_config)
    wait_for(
        lambda: (tmp_path / "pid").exists(), STARTED_WITHIN_SECONDS, lambda: "step never started"
    )

    redis_server.stop()
    try:
        assert status_of(run, timeout=120) == "FAILURE"
    finally:
        redis_server.start()
    messages = team.run_messages()
    assert "stayed unreachable for 3s" in messages
    assert "DAGSTER_CELERY_BROKER_URL" in messages
