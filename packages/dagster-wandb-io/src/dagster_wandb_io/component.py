"""The W&B IO manager as a dg component, so a team declares where it publishes in YAML:

    # src/<team>/defs/artifacts/defs.yaml
    type: dagster_wandb_io.component.WandbArtifactsComponent
    attributes:
      entity: bakery
      project: cakes

The IO manager is registered under the key the seed guide uses, `wandb_artifacts_manager`.
Offline unless WANDB_MODE=online; its cache is DAGSTER_WANDB_IO_BASE_DIR, the shared volume
every team's code, workers and runs mount.
"""

from __future__ import annotations

import dagster as dg

from dagster_wandb_io.io_manager import WandbArtifactsIOManager
from dagster_wandb_io.resources import WandbResource

IO_MANAGER_KEY = "wandb_artifacts_manager"


class WandbArtifactsComponent(dg.Component, dg.Model, dg.Resolvable):
    """The team's W&B artifacts IO manager, publishing into one entity and project."""

    entity: str
    project: str

    def io_manager(self) -> WandbArtifactsIOManager:
        return WandbArtifactsIOManager(
            wandb_resource=WandbResource(), entity=self.entity, project=self.project
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(resources={IO_MANAGER_KEY: self.io_manager()})
