import shutil

import pytest
from celery import Celery
from celery_team import CeleryTeam
from dagster import DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import pack_value
from throwaway_redis import RedisServer

from dagster_team_celery.steps import step_task
from dagster_team_celery.steps.step_task import create_execute_plan_task


@pytest.fixture
def redis_server(tmp_path) -> RedisServer:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    instance = RedisServer(server, tmp_path)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def team(tmp_path, redis_url):
    """A team on the throwaway Redis: its code written, a worker started by the test."""
    from celery_team import CeleryTeam

    celery_team = CeleryTeam(tmp_path, redis_url)
    celery_team.write_code()
    yield celery_team
    celery_team.cleanup()


@pytest.fixture
def deliver(tmp_path, redis_url, monkeypatch):
    """Deliver probe_ping's one step to the task, in this process, as a worker would:
    serving the team's module, with the team's own instance. ``send`` takes the message's
    instance ref and executable dict, which a test may replace as a hostile sender would."""
    team = CeleryTeam(tmp_path, redis_url)
    team.write_code()
    for name, value in team.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(step_task, "_instances", {})
    monkeypatch.setattr(step_task, "_served_module", [])
    step_task.serve_only("stopteam_code")
    recon_job = ReconstructableJob(
        ReconstructableRepository.for_module("stopteam_code", "defs", str(tmp_path)), "probe_ping"
    )
    instance = DagsterInstance.from_config(str(team.home))
    # As a launched run: it names its code (the step worker refuses a run of other code).
    run = instance.create_run_for_job(
        recon_job.get_definition(), run_config={}, job_code_origin=recon_job.get_python_origin()
    )
    task = create_execute_plan_task(Celery(broker="memory://", backend="cache+memory://"))

    def send(instance_ref=None, executable_dict=None, run_id=None) -> list[str]:
        args = ExecuteStepArgs(
            job_origin=recon_job.get_python_origin(),
            run_id=run_id or run.run_id,
            step_keys_to_execute=["report_runtime"],
            instance_ref=instance_ref or instance.get_ref(),
            retry_mode=RetryMode.DISABLED,
        )
        message = (pack_value(args), executable_dict or recon_job.to_dict())
        return task.apply(args=message).get()

    yield instance, run, send
    instance.dispose()
