"""Both teams' real pipelines on the local stack: each on its own workers, with its own
library pins, trading the bakery's artifact through the shared W&B cache."""

import tomllib

import pytest

from tests.repo import CODE_LOCATIONS
from tests.stack_helpers import object_store_keys

pytestmark = pytest.mark.local_stack

PINNED = ("pandas", "numpy")


def locked_pins(team: str) -> dict[str, str]:
    lock = tomllib.loads((CODE_LOCATIONS / team / "uv.lock").read_text())
    versions = {package["name"]: package.get("version") for package in lock["package"]}
    return {name: versions[name] for name in PINNED}


def run_and_check_workers(client, team: str, job: str, **kwargs) -> str:
    run_id = client.submit_job(team, job, **kwargs)
    status = client.wait_for_run(run_id, timeout=600)
    assert status == "SUCCESS", f"{team}/{job} ended {status}"
    workers = client.step_workers(run_id)
    assert workers and {worker.split("@")[0] for worker in workers.values()} == {team}
    return run_id


def test_each_team_runs_its_own_pins_in_code_server_and_worker(local_stack, client):
    assert locked_pins("bakery") != locked_pins("ml"), "the teams must pin different versions"
    for team in local_stack.teams:
        expected = locked_pins(team)
        code_server = client.job_metadata(team, "probe_ping")["loaded_by"]
        run_id = run_and_check_workers(client, team, "probe_ping")
        worker = client.output_metadata(run_id)["report_runtime"]["runtime"]
        for process in (code_server, worker):
            assert {name: process["versions"][name] for name in PINNED} == expected, process
            assert f"code_locations/{team}/.venv" in process["python"]
        print(f"\n{team}: code server and worker run {expected}")


def indexed_names(stack, entity: str, project: str) -> list[str]:
    from dagster_wandb_io.index_postgres import PostgresIndex

    index_url = stack.wandb_io_shared_env()["DAGSTER_WANDB_IO_INDEX_URL"]
    return PostgresIndex(index_url).names(entity, project)


def test_bakery_pipeline_publishes_and_ml_forecasts_from_the_shared_cache(local_stack, client):
    run_and_check_workers(client, "bakery", "cake_production_job")
    cache = local_stack.artifact_cache
    published = list(cache.rglob("cache/bakery/cakes/baked_cakes/*/entry.json"))
    assert published, "the bakery's table is not in the shared cache"
    # Its store of record: the object store, indexed in Postgres, so any host can read it.
    digest = published[0].parent.name
    stored = object_store_keys(local_stack, f"wandb-artifacts/bakery/cakes/baked_cakes/{digest}/")
    assert any(key.endswith("/entry.json") for key in stored), stored
    assert "baked_cakes" in indexed_names(local_stack, "bakery", "cakes")

    forecast_run = run_and_check_workers(client, "ml", "forecast_job")
    forecast = client.output_metadata(forecast_run)["cake_demand_forecast"]
    assert forecast["cakes_read"] == 6
    # Read in place from the shared cache: no copy of the table under the team's TMPDIR.
    copies = [
        path for path in local_stack.team_tmpdir("ml").rglob("*") if "baked_cakes" in path.name
    ]
    assert copies == []


def test_ml_training_pipeline_and_a_daily_partition_run_on_celery(local_stack, client):
    run_id = run_and_check_workers(client, "ml", "training_pipeline")
    evaluation = client.output_metadata(run_id)["model_evaluation"]
    assert evaluation["sklearn_accuracy"] > 0.85 and evaluation["agreement"] > 0.95
    run_and_check_workers(client, "ml", "daily_sales_job", tags={"dagster/partition": "2026-11-03"})
