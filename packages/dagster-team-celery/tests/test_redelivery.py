"""The step task skips a redelivered step: the run already ended, or the step already
succeeded. Without the check, acks_late redelivery runs a step twice, or after a cancel."""

import pytest
from celery import Celery
from celery_team import CeleryTeam
from dagster import DagsterEventType, DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import pack_value

from dagster_team_celery.tasks import create_execute_plan_task


@pytest.fixture
def deliver(tmp_path, redis_url, monkeypatch):
    """Deliver probe_ping's one step to the task, in this process, as a worker would."""
    team = CeleryTeam(tmp_path, redis_url)
    team.write_code()
    for name, value in team.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    recon_job = ReconstructableJob(
        ReconstructableRepository.for_module("stopteam_code", "defs", str(tmp_path)), "probe_ping"
    )
    instance = DagsterInstance.from_config(str(team.home))
    run = instance.create_run_for_job(recon_job.get_definition(), run_config={})
    task = create_execute_plan_task(Celery(broker="memory://", backend="cache+memory://"))
    args = ExecuteStepArgs(
        job_origin=recon_job.get_python_origin(),
        run_id=run.run_id,
        step_keys_to_execute=["report_runtime"],
        instance_ref=instance.get_ref(),
        retry_mode=RetryMode.DISABLED,
    )

    def send() -> list[str]:
        return task.apply(args=(pack_value(args), recon_job.to_dict())).get()

    yield instance, run, send
    instance.dispose()


def step_starts(instance: DagsterInstance, run_id: str) -> int:
    return len(instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_START).records)


def test_a_step_that_already_succeeded_returns_its_recorded_events(deliver):
    instance, run, send = deliver
    first = send()
    assert step_starts(instance, run.run_id) == 1

    again = send()

    assert step_starts(instance, run.run_id) == 1, "the step ran a second time"
    assert again, "an orchestrator waiting on the redelivered task must see the step finish"
    assert any("STEP_SUCCESS" in event for event in again)
    assert len(again) <= len(first) + 1


def test_a_step_of_a_run_that_ended_is_not_executed(deliver):
    instance, run, send = deliver
    instance.report_run_canceled(run)

    assert send() == []
    assert step_starts(instance, run.run_id) == 0
