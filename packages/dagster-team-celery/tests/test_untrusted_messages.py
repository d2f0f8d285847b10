"""A step's task message is not trusted: anyone holding the broker's password can write one.

Before the fix, a worker imported whatever code pointer the message named (a Python file on
the shared, writable volume included) and recorded events in whatever instance its ref named.
"""

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from dagster_team_celery.steps.step_task import ForeignTaskError

HOSTILE_CODE = """
import pathlib
pathlib.Path(__file__).with_name("imported").write_text("the worker ran foreign code")
import dagster as dg

@dg.op
def report_runtime():
    return 1

@dg.job
def probe_ping():
    report_runtime()

defs = dg.Definitions(jobs=[probe_ping])
"""


def test_a_step_naming_a_python_file_is_refused_before_it_is_imported(deliver, tmp_path):
    _, _, send = deliver
    shared = tmp_path / "shared-volume"
    shared.mkdir()
    (shared / "payload.py").write_text(HOSTILE_CODE)
    foreign = ReconstructableJob(
        ReconstructableRepository.for_file(str(shared / "payload.py"), "defs", str(shared)),
        "probe_ping",
    )
    with pytest.raises(ForeignTaskError, match="runs only its own team's module 'stopteam_code'"):
        send(executable_dict=foreign.to_dict())
    assert not (shared / "imported").exists()


def test_a_step_naming_another_teams_module_is_refused(deliver, tmp_path):
    _, _, send = deliver
    other = ReconstructableJob(
        ReconstructableRepository.for_module("ml.definitions", "defs", str(tmp_path)),
        "probe_ping",
    )
    with pytest.raises(ForeignTaskError, match=r"ml\.definitions"):
        send(executable_dict=other.to_dict())


def test_the_messages_instance_ref_is_ignored_for_the_workers_own(deliver, tmp_path):
    instance, run, send = deliver
    elsewhere_home = tmp_path / "elsewhere"
    elsewhere_home.mkdir()
    (elsewhere_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    elsewhere = DagsterInstance.from_config(str(elsewhere_home))
    send(instance_ref=elsewhere.get_ref())
    own_events = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
    assert own_events.records, "the step's events go to the worker's own instance"
    assert not elsewhere.get_run_by_id(run.run_id)
    assert not elsewhere.get_records_for_run(run.run_id).records
    elsewhere.dispose()


def test_a_step_of_another_teams_run_is_refused_and_writes_nothing_into_it(deliver, tmp_path):
    """The message names this team's own code, but the run id of another team's run: before
    the fix, the worker ran its step and wrote its events into that run."""
    instance, _, send = deliver
    ml_origin = ReconstructableJob(
        ReconstructableRepository.for_module("ml.definitions", "defs", str(tmp_path)),
        "probe_ping",
    ).get_python_origin()
    victim = instance.create_run_for_job(
        ReconstructableJob(
            ReconstructableRepository.for_module("stopteam_code", "defs", str(tmp_path)),
            "probe_ping",
        ).get_definition(),
        run_config={},
        job_code_origin=ml_origin,
    )
    with pytest.raises(ForeignTaskError, match=rf"step of run {victim.run_id}.*ml\.definitions"):
        send(run_id=victim.run_id)
    assert not instance.get_records_for_run(victim.run_id).records, "nothing written into it"
