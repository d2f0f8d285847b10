import dagster as dg

from bakery.definitions import defs


def test_definitions_load_and_every_job_runs_on_the_bakery_queue():
    definitions = defs()
    jobs = definitions.resolve_all_job_defs()
    expected = {"cake_production_job", "recipe_etl_job", "process_new_recipe", "probe_ping"}
    assert expected <= {job.name for job in jobs}
    for job in jobs:
        assert job.executor_def.name == "bakery_celery_executor", job.name


def test_the_asset_graph_follows_the_seed_pipeline():
    graph = defs().resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["mixed_dough"] == {"ingredients"}
    assert parents["baked_cakes"] == {"mixed_dough"}
    for report in ("production_analysis", "type_distribution", "top_cakes"):
        assert parents[report] == {"baked_cakes"}
    assert graph.get(dg.AssetKey("ingredients")).owners == ["team:bakery"]
