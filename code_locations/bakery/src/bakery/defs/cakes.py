"""The cake pipeline: ingredients -> mixed_dough -> baked_cakes -> cake reports."""

import json
from typing import Any

import dagster as dg
import pandas as pd
import wandb

from bakery.recipes import SAMPLE_RECIPES_DIR, Recipe, load_recipes
from bakery.storage import BakeryStorage

OWNERS = ["team:bakery"]
# A cake weighs what its dough weighed, less the water the oven drives out.
BAKING_LOSS = 0.12
# The bakery mixes this much dough for each recipe per day.
DAILY_DOUGH_G_PER_RECIPE = 12_000


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(value) for value in row) + " |" for row in frame.to_numpy()]
    return "\n".join([header, rule, *rows])


@dg.asset(
    group_name="cakes",
    owners=OWNERS,
    kinds={"json"},
    tags={"category": "input", "data_type": "json", "priority": "high"},
    metadata={
        "documentation": dg.MetadataValue.md(
            "## Ingredient extraction\n1. Load the recipe files\n2. Validate them\n"
            "3. Normalise the ingredient amounts"
        )
    },
)
def ingredients(bakery_storage: BakeryStorage) -> dg.MaterializeResult:
    """Reads the recipe files shipped in the repository and those accepted from the inbox."""
    recipes = [
        recipe.as_dict() for recipe in load_recipes(SAMPLE_RECIPES_DIR, bakery_storage.catalog)
    ]
    return dg.MaterializeResult(
        value=recipes,
        metadata={
            "recipe_count": len(recipes),
            "source": dg.MetadataValue.path(str(SAMPLE_RECIPES_DIR)),
            "recipes": dg.MetadataValue.json([recipe["name"] for recipe in recipes]),
            "table_schema": dg.MetadataValue.table_schema(
                dg.TableSchema(
                    columns=[
                        dg.TableColumn("name", "string"),
                        dg.TableColumn("type", "string"),
                        dg.TableColumn("servings", "int"),
                        dg.TableColumn("ingredients", "json"),
                    ]
                )
            ),
        },
    )


@dg.asset(group_name="cakes", owners=OWNERS, kinds={"pandas"}, tags={"category": "process"})
def mixed_dough(ingredients: list[dict[str, Any]]) -> dg.MaterializeResult:
    """Mixes each recipe's dough: total weight and how many batches a day's dough makes."""
    rows = []
    for recipe in ingredients:
        dough_g = Recipe(**recipe).dough_g
        rows.append(
            {
                "name": recipe["name"],
                "type": recipe["type"],
                "servings": recipe["servings"],
                "dough_g": round(dough_g),
                "batches": max(1, int(DAILY_DOUGH_G_PER_RECIPE // dough_g)),
            }
        )
    dough = pd.DataFrame(rows)
    return dg.MaterializeResult(
        value=dough,
        metadata={
            "total_dough_kg": round(float(dough["dough_g"].mul(dough["batches"]).sum()) / 1000, 1),
            "preview": dg.MetadataValue.md(markdown_table(dough)),
        },
    )


# What the bakery publishes: a W&B table (not a pickle), so a team on other library versions
# reads it as well as we do. The ML team forecasts demand from it. A returned W&B object is
# stored in the artifact under its type name.
PUBLISHED_OBJECT = "Table"


@dg.asset(
    group_name="cakes",
    owners=OWNERS,
    kinds={"pandas", "wandb"},
    tags={"category": "process", "published": "wandb"},
    # The bakery has one oven: one bake at a time across all of its runs (a concurrency pool;
    # `dagster instance concurrency set oven 2` once a second oven arrives).
    pool="oven",
    io_manager_key="wandb_artifacts_manager",
    metadata={
        "wandb_artifact_configuration": {
            "type": "dataset",
            "description": "The day's cakes, published by the bakery for other teams.",
            "aliases": ["daily"],
        }
    },
)
def baked_cakes(mixed_dough: pd.DataFrame) -> dg.MaterializeResult:
    """Bakes the day's cakes from the dough and publishes them as a W&B artifact."""
    cakes = mixed_dough.assign(
        cake_g=(mixed_dough["dough_g"] * (1 - BAKING_LOSS)).round().astype(int),
        cakes_baked=mixed_dough["batches"],
        slices=mixed_dough["batches"] * mixed_dough["servings"],
    )[["name", "type", "cake_g", "cakes_baked", "slices"]]
    return dg.MaterializeResult(
        value=wandb.Table(dataframe=cakes),
        metadata={
            "cakes_baked": int(cakes["cakes_baked"].sum()),
            "preview": dg.MetadataValue.md(markdown_table(cakes)),
        },
    )


CAKE_REPORTS = {
    "production_analysis": "Basic analysis of the day's cake production",
    "type_distribution": "How the day's cakes split by type",
    "top_cakes": "The cakes baked in the largest numbers",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            deps=["baked_cakes"],
            description=description,
            group_name="cake_reports",
            owners=OWNERS,
        )
        for key, description in CAKE_REPORTS.items()
    ],
    ins={"published": dg.AssetIn("baked_cakes", input_manager_key="wandb_artifacts_manager")},
)
def cake_analysis(published, bakery_storage: BakeryStorage):
    """Writes the day's production reports and records them as three assets."""
    cakes = published.get(PUBLISHED_OBJECT).get_dataframe()
    production = {
        "recipes": len(cakes),
        "cakes_baked": int(cakes["cakes_baked"].sum()),
        "slices": int(cakes["slices"].sum()),
        "baked_kg": round(float((cakes["cake_g"] * cakes["cakes_baked"]).sum()) / 1000, 1),
    }
    production_file = bakery_storage.reports / "production_analysis.json"
    production_file.write_text(json.dumps(production, indent=2))
    yield dg.MaterializeResult(
        asset_key="production_analysis",
        metadata={
            "report": dg.MetadataValue.path(str(production_file)),
            "production": dg.MetadataValue.json(production),
        },
    )

    by_type = (
        cakes.groupby("type", as_index=False)["cakes_baked"]
        .sum()
        .sort_values("cakes_baked", ascending=False)
    )
    yield dg.MaterializeResult(
        asset_key="type_distribution",
        metadata={
            "distribution": dg.MetadataValue.json(
                {row.type: int(row.cakes_baked) for row in by_type.itertuples()}
            ),
            "table": dg.MetadataValue.md(markdown_table(by_type)),
        },
    )

    top = cakes.nlargest(3, "cakes_baked")[["name", "cakes_baked", "slices"]]
    top_file = bakery_storage.reports / "top_cakes.csv"
    top.to_csv(top_file, index=False)
    yield dg.MaterializeResult(
        asset_key="top_cakes",
        metadata={
            "report": dg.MetadataValue.path(str(top_file)),
            "top": dg.MetadataValue.md(markdown_table(top)),
            "table_schema": dg.MetadataValue.table_schema(
                dg.TableSchema(
                    columns=[
                        dg.TableColumn("name", "string"),
                        dg.TableColumn("cakes_baked", "int"),
                        dg.TableColumn("slices", "int"),
                    ]
                )
            ),
        },
    )


cake_production_job = dg.define_asset_job(
    "cake_production_job",
    selection=dg.AssetSelection.all(),
    description="The whole cake pipeline, from recipe files to the day's reports.",
)

daily_cake_production = dg.ScheduleDefinition(
    name="daily_cake_production",
    cron_schedule="0 9 * * *",
    job=cake_production_job,
    description="Runs the cake pipeline every day at 09:00 (UTC).",
)
