"""The default launcher, on a real Redis: a run becomes one task on its team's run queue, run
monitoring learns from the run's heartbeat whether its process is still alive, and a resume is
the run sent again as its next attempt."""

import json
import socket
import time

import pytest
import redis
from billiard.exceptions import WorkerLostError
from celery import states
from dagster import DagsterRunStatus
from dagster._core.launcher import LaunchRunContext, ResumeRunContext, WorkerStatus
from dagster._core.test_utils import create_run_for_test, instance_for_test
from test_container_launcher import team_run

from dagster_team_celery.control import BrokerFull
from dagster_team_celery.runs import heartbeat, warm_launcher
from dagster_team_celery.runs.heartbeat import RunHeartbeat, read_heartbeat
from dagster_team_celery.runs.run_task import RUN_TASK_NAME
from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, key_prefix, run_queue

# Starts real Redis and real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration

LAUNCHER = {"module": "dagster_team_celery.runs.warm_launcher", "class": "WarmRunLauncher"}


@pytest.fixture
def instance(redis_url, monkeypatch):
    monkeypatch.setenv(BROKER_URL_ENV, f"{redis_url}/0")
    monkeypatch.setenv(BACKEND_URL_ENV, f"{redis_url}/1")
    with instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


def started_team_run(instance, team: str = "bakery"):
    return team_run(instance, team, status=DagsterRunStatus.STARTED)


def test_a_launch_is_one_task_named_after_the_run_on_the_teams_run_queue(instance, redis_url):
    run = team_run(instance, "bakery")
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))

    queued = redis.Redis.from_url(f"{redis_url}/0").lrange(
        f"{key_prefix('bakery')}{run_queue('bakery')}", 0, -1
    )
    assert len(queued) == 1
    headers = json.loads(queued[0])["headers"]
    assert headers["task"] == RUN_TASK_NAME
    assert headers["id"] == run.run_id
    assert headers["argsrepr"] == repr([run.run_id])


def test_a_run_whose_process_died_is_failed_with_what_killed_it(instance):
    run = started_team_run(instance)
    backend = instance.run_launcher.app("bakery").backend
    backend.mark_as_failure(
        run.run_id, WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 3.")
    )
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert "signal 9 (SIGKILL)" in health.msg


def test_a_run_that_ended_is_not_failed_for_its_finished_task(instance):
    run = started_team_run(instance)
    instance.run_launcher.app("bakery").backend.mark_as_done(run.run_id, "SUCCESS")
    instance.report_run_failed(run)  # ended, whatever the way
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.SUCCESS


def started_on(instance, team: str, worker: str):
    run = started_team_run(instance, team)
    backend = instance.run_launcher.app(team).backend
    backend.store_result(run.run_id, {"hostname": worker, "pid": 4242}, states.STARTED)
    return run


def beating(instance, run, attempt: int = 0, **kwargs) -> RunHeartbeat:
    client = instance.run_launcher.app("bakery").backend.client
    return RunHeartbeat(client, "bakery", run.run_id, attempt, "bakery-runs@host", **kwargs)


def test_a_beating_run_is_running_and_one_that_stopped_beating_is_failed(instance):
    run = started_on(instance, "bakery", "bakery-runs@gone")
    beat = beating(instance, run)
    beat.beat()
    for _ in range(3):
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    # Its key gone, as when the process died and its last beat expired.
    instance.run_launcher.app("bakery").backend.client.delete(beat.key)
    for _ in range(warm_launcher.MISSES_BEFORE_LOST - 1):
        # A miss may be a busy machine, or Redis restarting.
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    lost = instance.run_launcher.check_run_worker_health(run)
    assert lost.status == WorkerStatus.FAILED
    assert "bakery-runs@gone" in lost.msg and "4242" in lost.msg and "stopped beating" in lost.msg


def test_a_heartbeat_expires_by_itself(instance, monkeypatch):
    monkeypatch.setattr(heartbeat, "TTL_SECONDS", 1)
    run = started_team_run(instance)
    beating(instance, run).beat()
    client = instance.run_launcher.app("bakery").backend.client
    assert read_heartbeat(client, "bakery", run.run_id).startswith("0 bakery-runs@host ")
    wait_until(lambda: read_heartbeat(client, "bakery", run.run_id) is None, 5)
    assert read_heartbeat(client, "bakery", run.run_id) is None


def test_a_resume_is_the_run_sent_again_as_its_attempt_and_followed_by_its_own_task(
    instance, redis_url, monkeypatch
):
    run = started_on(instance, "bakery", "bakery-runs@gone")
    instance.run_launcher.resume_run(ResumeRunContext(run, None, resume_attempt_number=2))

    queued = redis.Redis.from_url(f"{redis_url}/0").lrange(
        f"{key_prefix('bakery')}{run_queue('bakery')}", 0, -1
    )
    headers = json.loads(queued[0])["headers"]
    assert (headers["id"], headers["argsrepr"]) == (f"{run.run_id}-resume-2", repr([run.run_id, 2]))
    run = instance.get_run_by_id(run.run_id)
    assert run.tags[warm_launcher.RUN_TASK_TAG] == f"{run.run_id}-resume-2"
    # Not taken yet (the team's worker is restarting): given time, then failed with the fix.
    waiting = instance.run_launcher.check_run_worker_health(run)
    assert (waiting.status, waiting.msg) == (
        WorkerStatus.RUNNING,
        "resume waiting for a run worker",
    )
    monkeypatch.setattr(warm_launcher, "RESUME_TAKEN_WITHIN_SECONDS", 0.0)
    failed = instance.run_launcher.check_run_worker_health(run)
    assert failed.status == WorkerStatus.FAILED
    assert "No warm run worker of team bakery took the resumed run" in failed.msg


def test_a_stalled_run_process_stops_once_a_resumed_attempt_beats(instance):
    run = started_team_run(instance)
    superseded: list[str] = []
    first = beating(instance, run, attempt=0, on_superseded=superseded.append)
    first.beat()
    beating(instance, run, attempt=1).beat()  # monitoring resumed it while the first stalled
    first.beat()  # the first comes back
    assert superseded and superseded[0].startswith("1 bakery-runs@host ")
    # The later attempt's key stays.
    client = instance.run_launcher.app("bakery").backend.client
    assert read_heartbeat(client, "bakery", run.run_id).startswith("1 ")


def test_a_broker_outage_is_not_taken_for_a_dead_run(instance, monkeypatch):
    run = started_team_run(instance)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    monkeypatch.setenv(BROKER_URL_ENV, f"redis://127.0.0.1:{closed_port}/0")
    monkeypatch.setenv(BACKEND_URL_ENV, f"redis://127.0.0.1:{closed_port}/1")
    instance.run_launcher._apps.clear()
    started = time.monotonic()
    for _ in range(warm_launcher.MISSES_BEFORE_LOST + 1):
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.RUNNING
        assert "cannot tell yet" in health.msg
    assert time.monotonic() - started < 60  # checks never sit out the outage
    monkeypatch.setattr(warm_launcher, "UNREACHABLE_BROKER_SECONDS", 0.0)
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert "broker has been unreachable" in health.msg


def test_a_run_not_yet_taken_by_a_worker_is_running(instance):
    run = started_team_run(instance)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING


@pytest.fixture
def revoked(instance, monkeypatch) -> list[tuple]:
    control = instance.run_launcher.app("bakery").control
    calls: list[tuple] = []
    monkeypatch.setattr(control, "revoke", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


def test_terminating_a_run_no_worker_took_yet_leaves_it_to_the_run_task(instance, revoked):
    run = team_run(instance, "bakery", status=DagsterRunStatus.STARTING)
    assert instance.run_launcher.terminate(run.run_id)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELING
    # Not revoked: a revoked message is dropped unseen, and the run would stay CANCELING; the
    # run task records CANCELED when a worker takes it (run_task.py).
    assert revoked == []


def test_terminating_a_started_run_has_its_process_sent_sigterm(instance, revoked):
    run = started_team_run(instance)
    assert instance.run_launcher.terminate(run.run_id)
    wait_until(lambda: revoked, 5)
    assert revoked == [((run.run_id,), {"terminate": True, "signal": "SIGTERM"})]


def test_the_platforms_own_location_is_left_to_its_code_server(instance):
    run = started_team_run(instance, "platform")
    health = instance.run_launcher.check_run_worker_health(run)
    # Not UNKNOWN: run monitoring fails a run whose health is unknown (the local suite's
    # cache-eviction run was failed and retried that way).
    assert health.status == WorkerStatus.RUNNING


def test_a_run_without_a_code_location_names_the_run():
    with instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="probe_sleep")
    with pytest.raises(ValueError, match=run.run_id):
        warm_launcher.run_team(run)


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def fill(redis_url: str) -> None:
    """Bound the broker's memory as compose does, and fill it (as a flooded queue would)."""
    client = redis.Redis.from_url(f"{redis_url}/0")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + (1 << 20))
    client.config_set("maxmemory-policy", "noeviction")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for number in range(1000):
            client.set(f"team:ml:flood:{number}", b"x" * 65536)


def test_a_launch_into_a_full_broker_fails_at_once_naming_the_bound_and_the_fix(
    instance, redis_url
):
    fill(redis_url)
    run = team_run(instance, "bakery")
    started = time.monotonic()
    with pytest.raises(BrokerFull) as refused:
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert time.monotonic() - started < 60, "a full broker must refuse, not hang"
    message = str(refused.value)
    assert "The broker (Redis) is full" in message
    assert "REDIS_MAXMEMORY" in message and "LLEN" in message
