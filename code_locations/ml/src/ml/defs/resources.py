import dagster as dg

from dagster_wandb_io import WandbArtifactsIOManager, WandbResource
from ml import WANDB_ENTITY, WANDB_PROJECT


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            # Offline unless WANDB_MODE=online; the cache lives on the shared volume
            # (DAGSTER_WANDB_IO_BASE_DIR), where every team's code and workers read it.
            "wandb_artifacts_manager": WandbArtifactsIOManager(
                wandb_resource=WandbResource(), entity=WANDB_ENTITY, project=WANDB_PROJECT
            ),
        }
    )
