import dagster as dg

from ml.definitions import defs


def test_definitions_load_and_every_job_runs_on_the_ml_queue():
    jobs = defs().resolve_all_job_defs()
    expected = {"training_pipeline", "daily_sales_job", "forecast_job", "probe_ping"}
    assert expected <= {job.name for job in jobs}
    for job in jobs:
        assert job.executor_def.name == "ml_celery_executor", job.name


def test_forecast_depends_on_the_bakerys_asset_by_key():
    graph = defs().resolve_asset_graph()
    forecast = graph.get(dg.AssetKey("cake_demand_forecast"))
    assert forecast.parent_keys == {dg.AssetKey("baked_cakes")}
    # The bakery's asset is only referenced here; the bakery's location materializes it.
    assert not graph.get(dg.AssetKey("baked_cakes")).is_materializable
