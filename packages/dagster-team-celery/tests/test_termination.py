"""Terminate stops a run's steps on real Celery workers, and the run ends CANCELED.

Without the platform's termination path (orchestration.StepOrchestrator.stop, and
termination.py in the worker) a terminated step sleeps on to the end, writes its output,
and the run ends SUCCESS: dagster-celery revokes without ``terminate=True``.
"""

import signal
import time

import pytest
from celery_team import STARTED_WITHIN_SECONDS, CeleryTeam, wait_for
from dagster._core.errors import DagsterExecutionInterruptedError
from psutil import pid_exists

from dagster_team_celery.probes import fan_out_run_config
from dagster_team_celery.settings import TERMINATE_GRACE_ENV, terminate_grace_seconds
from dagster_team_celery.steps.termination import exit_after_interrupted_step

# Starts real Redis and real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def sleep_config(tmp_path, seconds: float = 120.0, **extra) -> dict:
    config = {"seconds": seconds, "pid_file": str(tmp_path / "step.pid"), **extra}
    return {"ops": {"sleeper": {"config": config}}}


def run_status(process, timeout: float) -> str:
    output, _ = process.communicate(timeout=timeout)
    for line in output.splitlines():
        if line.startswith("STATUS "):
            return line.split()[1]
    raise AssertionError(f"the run process printed no status:\n{output[-3000:]}")


def step_pid(tmp_path) -> int:
    pid_file = tmp_path / "step.pid"
    wait_for(
        lambda: pid_file.exists() and pid_file.read_text(),
        STARTED_WITHIN_SECONDS,
        lambda: "step never started",
    )
    return int(pid_file.read_text())


def test_terminate_stops_the_running_step_and_the_run_ends_canceled(team, tmp_path):
    team.start_worker()
    run = team.start_run("sleep_job", sleep_config(tmp_path))
    pid = step_pid(tmp_path)

    clicked = time.monotonic()
    team.terminate_run(run)
    status = run_status(run, timeout=60)
    run_ended = time.monotonic() - clicked
    wait_for(lambda: not pid_exists(pid), 30, lambda: f"step process {pid} still alive")
    step_gone = time.monotonic() - clicked

    print(f"\nterminate -> run {status} in {run_ended:.2f}s; step process gone in {step_gone:.2f}s")
    assert status == "CANCELED"
    assert run_ended < 30
    # The step never returned, so the IO manager stored no output for it.
    assert not list((team.home / "storage").glob("*/sleeper/result"))
    # The worker's pool replaced the process and still runs steps.
    assert run_status(team.start_run("probe_ping", {}), timeout=120) == "SUCCESS"


def test_a_terminated_step_publishes_no_artifact_and_a_later_run_does(team, tmp_path):
    team.start_worker()
    config = {
        "ops": {"model": {"config": {"seconds": 120.0, "pid_file": str(tmp_path / "step.pid")}}}
    }
    run = team.start_run("publish_job", config)
    step_pid(tmp_path)
    team.terminate_run(run)
    assert run_status(run, timeout=60) == "CANCELED"
    assert team.published_artifacts() == []

    config["ops"]["model"]["config"]["seconds"] = 0.1
    assert run_status(team.start_run("publish_job", config), timeout=120) == "SUCCESS"
    assert team.published_artifacts() == ["model"]


def test_a_step_that_swallows_sigterm_is_killed_after_the_grace_period(team, tmp_path):
    team.start_worker(**{TERMINATE_GRACE_ENV: "2"})
    run = team.start_run("sleep_job", sleep_config(tmp_path, ignore_terminate=True))
    pid = step_pid(tmp_path)

    clicked = time.monotonic()
    team.terminate_run(run)
    assert run_status(run, timeout=60) == "CANCELED"
    wait_for(lambda: not pid_exists(pid), 20, lambda: f"stubborn step {pid} never killed")
    gone_after = time.monotonic() - clicked

    print(f"\nstubborn step SIGKILLed {gone_after:.2f}s after terminate (grace 2s)")
    assert gone_after >= 2, "the step must get its grace period before SIGKILL"
    assert "sending SIGKILL" in team.worker_log()
    assert not list((team.home / "storage").glob("*/sleeper/result"))


def test_terminating_a_fan_out_midway_stops_every_step(team, tmp_path):
    team.start_worker()
    run = team.start_run("probe_fan_out", fan_out_run_config(2.0))
    wait_for(lambda: finished_leaves(team) >= 2, 120, lambda: "no step finished")

    clicked = time.monotonic()
    team.terminate_run(run)
    status = run_status(run, timeout=60)
    ended_after = time.monotonic() - clicked
    # Let any step the worker would still run show up: none may start or finish any more.
    finished = finished_leaves(team)
    time.sleep(4)
    finished_later = finished_leaves(team)

    print(f"\nfan-out terminated: {status} after {ended_after:.2f}s, {finished}/50 steps done")
    assert status == "CANCELED"
    assert finished < 50
    assert finished_later == finished, "a step ran after the run was canceled"


def finished_leaves(team: CeleryTeam) -> int:
    return len(list((team.home / "storage").glob("*/leaf_*/result")))


def test_a_run_whose_step_waits_in_a_queue_without_workers_ends_canceled(team, tmp_path):
    # No worker: the step sits in the queue. Terminate must not wait for a worker forever.
    run_config = {
        **sleep_config(tmp_path, seconds=1.0),
        "execution": {"config": {"termination_timeout_seconds": 3.0}},
    }
    run = team.start_run("sleep_job", run_config)
    wait_for(
        lambda: run_submitted(team), STARTED_WITHIN_SECONDS, lambda: "the step was never submitted"
    )

    clicked = time.monotonic()
    team.terminate_run(run)
    assert run_status(run, timeout=60) == "CANCELED"
    # Its termination timeout (3 s), not a worker that never comes; loose, for busy cores.
    assert time.monotonic() - clicked < 45

    # A worker that starts afterwards skips the stale step instead of running it.
    team.start_worker()
    time.sleep(5)
    assert not (tmp_path / "step.pid").exists()


def run_submitted(team: CeleryTeam) -> bool:
    with team.instance() as instance:
        runs = instance.get_runs(limit=1)
        return bool(runs) and any(
            "Submitting celery task" in (entry.message or "")
            for entry in instance.all_logs(runs[0].run_id)
        )


def test_an_interrupted_step_leaves_the_pool_and_restores_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit), exit_after_interrupted_step():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what Dagster leaves behind
        raise DagsterExecutionInterruptedError()
    assert signal.getsignal(signal.SIGTERM) == before


def test_grace_setting_rejects_nonsense(monkeypatch):
    monkeypatch.setenv(TERMINATE_GRACE_ENV, "soon")
    with pytest.raises(Exception, match=TERMINATE_GRACE_ENV):
        terminate_grace_seconds()
    monkeypatch.setenv(TERMINATE_GRACE_ENV, "2.5")
    assert terminate_grace_seconds() == 2.5
