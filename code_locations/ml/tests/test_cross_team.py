import dagster as dg
import pandas as pd
import pytest
import wandb

from dagster_wandb_io import WandbArtifactsIOManager, WandbResource
from dagster_wandb_io.keys import PRIVATE_KEY_ENV
from ml import BAKERY_PUBLISHED
from ml.defs import cross_team

BAKED = pd.DataFrame(
    {
        "name": ["chocolate_cake", "new_york_cheesecake"],
        "type": ["sponge", "cheesecake"],
        "cake_g": [900, 1500],
        "cakes_baked": [12, 5],
        "slices": [120, 60],
    }
)


def bakery_io_manager() -> WandbArtifactsIOManager:
    """The IO manager as the bakery configures it: its own entity and project."""
    return WandbArtifactsIOManager(
        wandb_resource=WandbResource(),
        entity=BAKERY_PUBLISHED["entity"],
        project=BAKERY_PUBLISHED["project"],
    )


def publish_as_the_bakery(bakery_key: str) -> None:
    """What the bakery's own code location does, with the bakery's key (only the bakery's
    containers hold it)."""

    @dg.asset(name="baked_cakes", io_manager_key="wandb_artifacts_manager")
    def bakery_publication() -> wandb.Table:
        return wandb.Table(dataframe=BAKED)

    bakery_io = bakery_io_manager()
    with pytest.MonkeyPatch.context() as as_the_bakery:
        as_the_bakery.setenv(PRIVATE_KEY_ENV, bakery_key)
        assert dg.materialize(
            [bakery_publication], resources={"wandb_artifacts_manager": bakery_io}
        ).success


def test_forecast_reads_the_bakerys_table_from_its_project(
    team_resources, offline_wandb, bakery_key
):
    publish_as_the_bakery(bakery_key)
    result = dg.materialize(
        [cross_team.cake_demand_forecast, cross_team.baked_cakes],
        resources=team_resources,
        selection=[cross_team.cake_demand_forecast],
    )
    forecast = result.output_for_node("cake_demand_forecast")
    assert list(forecast["name"]) == ["chocolate_cake", "new_york_cheesecake"]
    assert list(forecast["expected_slices"]) == [110, 66]
    assert list(offline_wandb.rglob("cache/bakery/cakes/baked_cakes/*/entry.json"))


def test_the_ml_team_cannot_publish_as_the_bakery(offline_wandb):
    """With its own key, ml's write under the bakery's entity is refused before anything is
    written."""

    @dg.asset(name="baked_cakes", io_manager_key="wandb_artifacts_manager")
    def forged() -> wandb.Table:
        return wandb.Table(dataframe=BAKED)

    io = bakery_io_manager()
    with pytest.raises(Exception, match="cannot publish artifacts under the W&B entity 'bakery'"):
        dg.materialize([forged], resources={"wandb_artifacts_manager": io})
    assert not list(offline_wandb.rglob("cache/bakery/*"))
