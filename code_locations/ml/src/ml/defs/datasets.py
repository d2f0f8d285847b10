"""Datasets: a W&B table, and daily-partitioned sales read whole and by time window."""

import hashlib
from typing import Any

import dagster as dg
import wandb
from sklearn.datasets import load_iris

OWNERS = ["team:ml"]
WANDB = "wandb_artifacts_manager"
CAKE_TYPES = ("sponge", "loaf", "cheesecake", "layer")

sales_days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-08")
# Day-over-day comparisons start a day later, so every partition has a previous day.
comparison_days = dg.DailyPartitionsDefinition(start_date="2026-11-02", end_date="2026-11-08")


@dg.asset(
    group_name="datasets",
    owners=OWNERS,
    kinds={"wandb"},
    io_manager_key=WANDB,
    metadata={
        "wandb_artifact_configuration": {
            "type": "dataset",
            "description": "The iris measurements that ship with scikit-learn.",
        }
    },
)
def iris_table() -> wandb.Table:
    """The training data, as a W&B table any team can read without our library versions."""
    return wandb.Table(dataframe=load_iris(as_frame=True).frame)


def sales_for(day: str) -> dict[str, int]:
    """Deterministic stand-in for a day's till data: the same day always sells the same."""
    seed = hashlib.sha256(day.encode()).digest()
    return {cake: 20 + seed[index] % 40 for index, cake in enumerate(CAKE_TYPES)}


@dg.asset(
    partitions_def=sales_days,
    group_name="sales",
    owners=OWNERS,
    kinds={"wandb"},
    io_manager_key=WANDB,
    metadata={"wandb_artifact_configuration": {"type": "dataset"}},
)
def daily_cake_sales(context: dg.AssetExecutionContext) -> dict[str, int]:
    """One W&B artifact per day: daily_cake_sales.<date>."""
    return sales_for(context.partition_key)


@dg.asset(
    group_name="sales",
    owners=OWNERS,
    ins={"daily_cake_sales": dg.AssetIn(input_manager_key=WANDB)},
)
def sales_by_type(daily_cake_sales: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Reads every day's artifact: {date: sales}."""
    totals = {cake: sum(day[cake] for day in daily_cake_sales.values()) for cake in CAKE_TYPES}
    return {"days": sorted(daily_cake_sales), "totals": totals}


@dg.asset(
    partitions_def=comparison_days,
    group_name="sales",
    owners=OWNERS,
    ins={
        "daily_cake_sales": dg.AssetIn(
            input_manager_key=WANDB,
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1),
        )
    },
)
def sales_day_over_day(
    context: dg.AssetExecutionContext, daily_cake_sales: dict[str, dict[str, int]]
) -> dict[str, int]:
    """Reads two specific days, the partition's own and the one before, and compares them."""
    today = context.partition_key
    (yesterday,) = (day for day in daily_cake_sales if day != today)
    return {
        cake: daily_cake_sales[today][cake] - daily_cake_sales[yesterday][cake]
        for cake in CAKE_TYPES
    }


daily_sales_job = dg.define_asset_job(
    "daily_sales_job",
    selection=dg.AssetSelection.assets(daily_cake_sales),
    partitions_def=sales_days,
    description="Records one day of sales: one run per partition.",
)
