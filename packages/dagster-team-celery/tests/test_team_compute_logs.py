"""Captured logs under the team of their run (team_compute_logs.py), which pins
S3ComputeLogManager's private _resolve_path_for_namespace of dagster-aws==0.29.27."""

import uuid

import dagster as dg
from dagster._core.storage.compute_log_manager import ComputeIOType

from dagster_team_celery.deploy.object_store_identities import TICKS_FOLDER
from dagster_team_celery.team_compute_logs import TeamS3ComputeLogManager


def manager() -> TeamS3ComputeLogManager:
    return TeamS3ComputeLogManager(bucket="platform", prefix="compute-logs", region="us-east-1")


def test_a_teams_process_writes_its_runs_logs_under_its_own_team(monkeypatch):
    monkeypatch.setenv("DAGSTER_TEAM", "bakery")
    run_id = str(uuid.uuid4())
    key = manager()._s3_key([run_id, "compute_logs", "bake"], ComputeIOType.STDERR)
    assert key == f"compute-logs/bakery/storage/{run_id}/compute_logs/bake.err"


def test_logs_of_no_run_go_to_the_ticks_folder(monkeypatch):
    monkeypatch.setenv("DAGSTER_TEAM", "bakery")
    key = manager()._s3_key(["__repository__", "inbox_sensor", "17"], ComputeIOType.STDERR)
    assert key.startswith(f"compute-logs/{TICKS_FOLDER}/storage/__repository__/inbox_sensor/")


def test_the_webserver_finds_a_runs_team_from_the_run(monkeypatch):
    monkeypatch.delenv("DAGSTER_TEAM", raising=False)
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            dg.GraphDefinition(name="g").to_job(), tags={"dagster/code_location": "ml"}
        )
        logs = manager()
        logs.register_instance(instance)
        key = logs._s3_key([run.run_id, "compute_logs", "train"], ComputeIOType.STDOUT)
        assert key == f"compute-logs/ml/storage/{run.run_id}/compute_logs/train.out"
        # A run not stored (yet) is not cached under a wrong team.
        unknown = str(uuid.uuid4())
        assert "/_no_location/" in logs._s3_key([unknown, "x"], ComputeIOType.STDOUT)
        assert unknown not in logs._team_by_run
