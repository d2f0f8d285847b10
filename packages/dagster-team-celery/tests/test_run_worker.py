"""A team's warm run worker, for real: a run launched by WarmRunLauncher executes in a fork of
the run worker, its steps on the team's step worker; after the team's module changes and its
workers restart (what `make redeploy` does), the next run executes the new code."""

import logging
import re
import time
from collections import Counter

import pytest
from celery_team import STARTED_WITHIN_SECONDS, TEAM, wait_for
from dagster import DagsterEventType, DagsterRunStatus
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.launcher import LaunchRunContext
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)

from dagster_team_celery.runs.warm_launcher import WarmRunLauncher

# Starts real Redis and real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration

RUN_PROCESS = re.compile(r"Started process for run \(pid: \d+\) in warm run worker (\S+)\.")


@pytest.fixture
def warm_team(team, monkeypatch):
    for name, value in team.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(team.root))
    team.start_worker("steps", "runs")  # as compose runs them: one preloaded parent
    return team


def launch(team, instance, launcher, job: str = "greet_job", run_config: dict | None = None) -> str:
    """Launch ``job`` as the daemon would, and return its run id without waiting."""
    repository = ReconstructableRepository.for_module("stopteam_code", "defs", str(team.root))
    recon_job = ReconstructableJob(repository, job)
    location = GrpcServerCodeLocationOrigin(host="localhost", port=4000, location_name=TEAM)
    run = instance.create_run_for_job(
        recon_job.get_definition(),
        run_config=run_config,
        status=DagsterRunStatus.STARTING,
        job_code_origin=recon_job.get_python_origin(),
        remote_job_origin=RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job),
    )
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run.run_id


def launch_and_wait(team, instance, launcher, job: str = "greet_job", **kwargs) -> str:
    run_id = launch(team, instance, launcher, job, **kwargs)
    wait_for_end(instance, run_id)
    return run_id


def wait_for_end(instance, run_id: str) -> None:
    run = instance.get_run_by_id(run_id)
    wait_for(
        lambda: instance.get_run_by_id(run.run_id).is_finished,
        120,
        lambda: f"run {run.run_id} is {instance.get_run_by_id(run.run_id).status}",
    )


def messages(instance, run_id: str) -> str:
    return "\n".join(entry.message or "" for entry in instance.all_logs(run_id))


def test_a_run_starts_in_the_warm_worker_and_a_restart_brings_the_new_code(warm_team):
    with warm_team.instance() as instance:
        launcher = WarmRunLauncher()
        launcher.register_instance(instance)

        first = launch_and_wait(warm_team, instance, launcher)
        assert instance.get_run_by_id(first).status == DagsterRunStatus.SUCCESS
        logged = messages(instance, first)
        assert RUN_PROCESS.search(logged).group(1).startswith(f"{TEAM}-runs@")
        assert "greeting: first" in logged

        module = warm_team.root / "stopteam_code.py"
        module.write_text(module.read_text().replace('GREETING = "first"', 'GREETING = "second"'))
        # What `make redeploy TEAM=x` does: the team's workers restart and import the new code.
        warm_team.stop_worker()
        warm_team.start_worker("steps", "runs")

        second = launch_and_wait(warm_team, instance, launcher)
        assert instance.get_run_by_id(second).status == DagsterRunStatus.SUCCESS
        assert "greeting: second" in messages(instance, second)


def test_a_run_worker_refuses_a_run_whose_code_is_another_teams(warm_team):
    """Anyone holding the team's broker user can queue a run id; the worker executes only runs
    whose code origin is its own team's module, never another team's run."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

    with warm_team.instance() as instance:
        launcher = WarmRunLauncher()
        launcher.register_instance(instance)
        repository = ReconstructableRepository.for_module(
            "stopteam_code", "defs", str(warm_team.root)
        )
        foreign = JobPythonOrigin(
            "greet_job",
            RepositoryPythonOrigin(
                "/usr/bin/python", ModuleCodePointer("bakery.definitions", "defs", "/opt/app")
            ),
        )
        location = GrpcServerCodeLocationOrigin(host="localhost", port=4000, location_name=TEAM)
        run = instance.create_run_for_job(
            ReconstructableJob(repository, "greet_job").get_definition(),
            status=DagsterRunStatus.STARTING,
            job_code_origin=foreign,
            remote_job_origin=RemoteJobOrigin(
                RemoteRepositoryOrigin(location, "__repository__"), "greet_job"
            ),
        )
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        app = launcher.app(TEAM)
        wait_for(lambda: app.backend.get_task_meta(run.run_id)["status"] == "FAILURE", 60)
        refusal = str(app.backend.get_task_meta(run.run_id)["result"])
        assert "Refused" in refusal and "bakery.definitions" in refusal
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING
        assert "greeting" not in messages(instance, run.run_id)


def test_stopping_the_workers_drains_a_run_whose_next_step_is_still_to_come(warm_team):
    """`docker stop` of a team's workers (a redeploy) drains the run worker first: the run in
    flight still gets a step worker for the step after the one running when the stop came."""
    with warm_team.instance() as instance:
        launcher = WarmRunLauncher()
        launcher.register_instance(instance)
        run_id = launch(
            warm_team,
            instance,
            launcher,
            "sleep_then_step_job",
            run_config={"ops": {"sleeper": {"config": {"seconds": 4}}}},
        )
        wait_for(
            lambda: "sleeper" in started_steps(instance, run_id),
            90,
            lambda: f"the sleeper never started:\n{messages(instance, run_id)}",
        )
        warm_team.worker.terminate()  # SIGTERM to the workers' parent, as `docker stop` sends

        wait_for_end(instance, run_id)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS, messages(
            instance, run_id
        )
        assert "the step after the sleep ran" in messages(instance, run_id)
        assert warm_team.worker.wait(60) == 0


def started_steps(instance, run_id: str) -> set[str]:
    return {
        entry.step_key
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_START"
    }


# The team's instance, with run monitoring resuming runs through the warm launcher (as
# dagster.yaml sets it for the platform).
RESUMABLE_INSTANCE = """
run_launcher:
  module: dagster_team_celery.runs.warm_launcher
  class: WarmRunLauncher
run_monitoring:
  enabled: true
  max_resume_run_attempts: 3
"""


def monitor_until_resumed(instance, run_id: str, timeout: float = 60) -> float:
    """Dagster's own run monitoring check, as the daemon runs it, until it resumes the run."""
    from dagster._daemon.monitoring.run_monitoring import (
        RESUME_RUN_LOG_MESSAGE,
        monitor_started_run,
    )

    started = time.monotonic()
    logger = logging.getLogger("run_monitoring_test")

    def resumed() -> bool:
        monitor_started_run(instance, None, instance.get_run_record_by_id(run_id), logger)
        return RESUME_RUN_LOG_MESSAGE in messages(instance, run_id)

    wait_for(lambda: resumed() or time.sleep(1), timeout, lambda: "the run was never resumed")
    return time.monotonic() - started


def step_starts(instance, run_id: str) -> Counter:
    return Counter(
        entry.dagster_event.step_key
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    )


def test_a_run_whose_workers_all_died_is_resumed_by_their_replacement(team, monkeypatch, tmp_path):
    """The team's whole worker service killed mid-step (its container died): run monitoring
    resumes the run on the restarted run worker, the lost step runs again, the run succeeds."""
    with (team.home / "dagster.yaml").open("a") as config:
        config.write(RESUMABLE_INSTANCE)
    for name, value in team.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(team.root))
    team.start_worker("steps", "runs")
    pid_file = tmp_path / "sleeping"
    run_config = {"ops": {"sleeper": {"config": {"seconds": 3, "pid_file": str(pid_file)}}}}
    with team.instance() as instance:
        run_id = launch(team, instance, instance.run_launcher, "sleep_then_step_job", run_config)
        wait_for(
            pid_file.exists, STARTED_WITHIN_SECONDS, lambda: messages(instance, run_id)[-3000:]
        )
        team.kill_worker()  # parent, run worker, step worker and the run's own process
        killed = time.monotonic()
        team.start_worker("steps", "runs")
        noticed = monitor_until_resumed(instance, run_id)
        wait_for_end(instance, run_id)
        print(f"\nresumed {noticed:.1f}s after the kill; SUCCESS {time.monotonic() - killed:.1f}s")
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        logged = messages(instance, run_id)
        assert "Resumed process for run" in logged and "(resume attempt 1)" in logged
        assert "Resumed the run: 0 step(s) already succeeded" in logged
        # The sleeper's worker died while it ran: it ran again, once; the next step once.
        assert step_starts(instance, run_id) == Counter({"sleeper": 2, "after_sleep": 1})
