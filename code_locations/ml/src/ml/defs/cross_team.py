"""What the ML team builds on the bakery's published data: a cross-location dependency."""

import dagster as dg
import pandas as pd

from ml import BAKERY_PUBLISHED

# Defined and materialized by the bakery's code location; named here by its asset key, so the
# global lineage links the two teams.
baked_cakes = dg.AssetSpec(
    "baked_cakes",
    description="The bakery's daily cakes, published as a W&B table (bakery/cakes/baked_cakes).",
)
# Demand per slice baked, by cake type (a stand-in for a fitted model).
DEMAND_PER_SLICE = {"sponge": 0.92, "loaf": 0.85, "cheesecake": 1.1, "layer": 0.97}


@dg.asset(
    group_name="forecasting",
    owners=["team:ml"],
    kinds={"pandas"},
    ins={
        "published": dg.AssetIn(
            key="baked_cakes",
            input_manager_key="wandb_artifacts_manager",
            # Read from the bakery's entity and project, through the shared cache.
            metadata={"wandb_artifact_configuration": {**BAKERY_PUBLISHED, "get": "Table"}},
        )
    },
)
def cake_demand_forecast(published) -> dg.MaterializeResult:
    """Tomorrow's expected demand for each cake the bakery baked today."""
    cakes = published.get_dataframe()
    forecast = pd.DataFrame(
        {
            "name": cakes["name"],
            "expected_slices": (cakes["slices"] * cakes["type"].map(DEMAND_PER_SLICE))
            .round()
            .astype(int),
        }
    )
    return dg.MaterializeResult(
        value=forecast,
        metadata={
            "cakes_read": len(cakes),
            "expected_slices": int(forecast["expected_slices"].sum()),
        },
    )


forecast_job = dg.define_asset_job(
    "forecast_job",
    selection=dg.AssetSelection.assets(cake_demand_forecast),
    description="Forecasts demand from the bakery's latest published cakes.",
)
