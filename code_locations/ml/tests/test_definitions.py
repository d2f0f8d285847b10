import dagster as dg

from ml.definitions import defs
from ml.defs import training


def test_definitions_load_and_every_job_runs_on_the_ml_queue():
    definitions = defs()
    jobs = definitions.resolve_all_job_defs()
    assert {"training_pipeline", "probe_ping"} <= {j.name for j in jobs}
    for job in jobs:
        assert job.executor_def.name == "ml_celery_executor", job.name


def test_training_assets_materialize_in_process():
    result = dg.materialize([training.iris_dataset, training.iris_model, training.iris_evaluation])
    assert result.success
    assert result.output_for_node("iris_evaluation") > 0.8
