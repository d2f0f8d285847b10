import dagster as dg

from bakery.definitions import defs
from bakery.defs import cakes


def test_definitions_load_and_every_job_runs_on_the_bakery_queue():
    definitions = defs()
    jobs = definitions.resolve_all_job_defs()
    assert {"cake_pipeline", "probe_ping", "probe_fan_out", "probe_chain"} <= {j.name for j in jobs}
    for job in jobs:
        assert job.executor_def.name == "bakery_celery_executor", job.name


def test_cake_assets_materialize_in_process():
    result = dg.materialize([cakes.ingredients, cakes.mixed_dough, cakes.baked_cakes])
    assert result.success
    baked = result.output_for_node("baked_cakes")
    assert list(baked["name"]) == ["chocolate", "vanilla", "carrot"]
    assert (baked["cakes"] > 0).all()
