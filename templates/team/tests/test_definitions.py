import dagster as dg
from __TEAM__.definitions import defs
from __TEAM__.defs import assets


def test_definitions_load_and_every_job_runs_on_the_teams_queue():
    jobs = defs().resolve_all_job_defs()
    assert {"sample_job", "probe_ping"} <= {job.name for job in jobs}
    for job in jobs:
        assert job.executor_def.name == "__TEAM___celery_executor", job.name


def test_sample_assets_materialize_in_process():
    result = dg.materialize([assets.raw_numbers, assets.squared_numbers])
    assert result.success
    assert result.output_for_node("squared_numbers")[3] == 9
