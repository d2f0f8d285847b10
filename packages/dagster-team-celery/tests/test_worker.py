"""The worker never consumes a team's queue unless it can import the team's code."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from dagster_team_celery.settings import key_prefix
from dagster_team_celery.workers import liveness, worker_health
from dagster_team_celery.workers.worker_cli import parse_roles, worker_argv
from dagster_team_celery.workers.worker_roles import (
    IDLE_FORKS_ENV,
    RUN_CONCURRENCY_ENV,
    run_worker_args,
    step_worker_args,
)

# Starts real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration

BAKERY_QUEUE_KEY = key_prefix("bakery") + "bakery"


def worker_env(tmp_path, redis_url: str, team_module: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_TEAM": "bakery",
        "DAGSTER_TEAM_MODULE": team_module,
        "DAGSTER_CELERY_BROKER_URL": f"{redis_url}/0",
        "DAGSTER_CELERY_BACKEND_URL": f"{redis_url}/1",
        "DAGSTER_CELERY_LIVENESS_FILE": str(tmp_path / "alive"),
        "PYTHONPATH": str(tmp_path),
    }


def test_worker_that_cannot_import_team_code_exits_without_taking_a_step(tmp_path, redis_url):
    (tmp_path / "broken_team.py").write_text("import module_that_does_not_exist\n")
    broker = redis.Redis.from_url(f"{redis_url}/0")
    broker.lpush(BAKERY_QUEUE_KEY, b"a step waiting for a bakery worker")

    result = subprocess.run(
        worker_argv(),
        env=worker_env(tmp_path, redis_url, "broken_team"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "cannot import its code module 'broken_team'" in result.stderr
    assert "module_that_does_not_exist" in result.stderr
    assert broker.llen(BAKERY_QUEUE_KEY) == 1, "the waiting step must stay on the queue"
    assert not list(tmp_path.glob("alive*"))


def test_worker_with_importable_code_reports_alive_and_stops_cleanly(tmp_path, redis_url):
    (tmp_path / "fine_team.py").write_text(
        textwrap.dedent(
            """
            import dagster as dg

            @dg.definitions
            def defs():
                return dg.Definitions()
            """
        )
    )
    env = worker_env(tmp_path, redis_url, "fine_team")
    process = subprocess.Popen(
        worker_argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while healthcheck_status(env) != 0:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "worker never reported alive"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(60)
    assert process.returncode == 0
    assert not list(tmp_path.glob("alive*")), "a stopped worker must not look alive"


def healthcheck_status(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, "-m", "dagster_team_celery.workers.worker_health"],
        env=env,
        capture_output=True,
    ).returncode


def test_healthcheck_fails_on_a_missing_or_stale_liveness_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(liveness.LIVENESS_FILE_ENV, str(tmp_path / "alive"))
    steps, runs = (tmp_path / "alive-steps", tmp_path / "alive-runs")
    assert worker_health.main([]) == 1
    assert "missing" in capsys.readouterr().out
    liveness.mark_alive(steps)
    assert worker_health.main(["steps"]) == 0
    # Both roles by default: a worker whose run role is not consuming is not healthy.
    assert worker_health.main([]) == 1
    assert "runs:" in capsys.readouterr().out
    liveness.mark_alive(runs)
    assert worker_health.main([]) == 0
    stale = time.time() - liveness.STALE_AFTER_SECONDS - 5
    os.utime(runs, (stale, stale))
    assert worker_health.main([]) == 1
    assert "last refreshed" in capsys.readouterr().out


@pytest.mark.parametrize("team", ["bakery", "ml"])
def test_worker_consumes_only_its_team_queue_under_its_team_name(team):
    argv = step_worker_args(team)
    assert argv[argv.index("--app") + 1] == "dagster_team_celery.steps.step_worker"
    assert argv[argv.index("--queues") + 1] == team
    assert argv[argv.index("--hostname") + 1] == f"{team}@%h"


def test_worker_without_its_own_instance_config_exits_before_taking_a_step(tmp_path, redis_url):
    (tmp_path / "fine_team.py").write_text("import dagster as dg\ndefs = dg.Definitions()\n")
    broker = redis.Redis.from_url(f"{redis_url}/0")
    broker.lpush(BAKERY_QUEUE_KEY, b"a step waiting for a bakery worker")
    env = worker_env(tmp_path, redis_url, "fine_team")
    (tmp_path / "home" / "dagster.yaml").unlink()

    result = subprocess.run(worker_argv(), env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    assert "holds no dagster.yaml" in result.stderr
    assert broker.llen(BAKERY_QUEUE_KEY) == 1


def test_run_worker_consumes_its_teams_run_queue_with_a_fresh_fork_per_run(monkeypatch):
    monkeypatch.delenv(RUN_CONCURRENCY_ENV, raising=False)
    monkeypatch.delenv(IDLE_FORKS_ENV, raising=False)
    argv = run_worker_args("bakery")
    assert argv[argv.index("--app") + 1] == "dagster_team_celery.runs.run_worker"
    assert argv[argv.index("--queues") + 1] == "bakery-runs"
    assert argv[argv.index("--hostname") + 1] == "bakery-runs@%h"
    assert argv[argv.index("--max-tasks-per-child") + 1] == "1"
    # As many runs at once as dagster.yaml lets a team have; no fork kept while idle.
    assert argv[argv.index("--autoscale") + 1] == "4,0"


def test_a_workers_roles_default_to_both_and_an_unknown_one_is_refused(capsys):
    assert [role.name for role in parse_roles([])] == ["steps", "runs"]
    assert [role.name for role in parse_roles(["runs", "runs"])] == ["runs"]
    with pytest.raises(SystemExit):
        parse_roles(["step"])
    assert "unknown role(s) 'step': choose steps or runs" in capsys.readouterr().err
