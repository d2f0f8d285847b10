"""A job whose steps run in separate processes (multiprocess executor), for test_concurrency."""

from dagster import Out, job, multiprocess_executor, op

from helpers import seed_resources


def _make(i: int):
    @op(
        name=f"produce_{i}",
        out=Out(
            metadata={"wandb_artifact_configuration": {"name": f"parallel_{i}", "type": "dataset"}}
        ),
    )
    def produce():
        return {"step": i}

    return produce


PRODUCERS = [_make(i) for i in range(2)]


@job(
    resource_defs=seed_resources(),
    executor_def=multiprocess_executor.configured({"max_concurrent": 2}),
)
def parallel_job():
    for producer in PRODUCERS:
        producer()
