"""A first cut of the cake pipeline: ingredients -> mixed_dough -> baked_cakes."""

import dagster as dg
import pandas as pd

RECIPES = [
    {"name": "chocolate", "flour_g": 300, "sugar_g": 200, "eggs": 3},
    {"name": "vanilla", "flour_g": 280, "sugar_g": 180, "eggs": 2},
    {"name": "carrot", "flour_g": 320, "sugar_g": 150, "eggs": 4},
]


@dg.asset(group_name="cakes", owners=["team:bakery"])
def ingredients() -> pd.DataFrame:
    return pd.DataFrame(RECIPES)


@dg.asset(group_name="cakes", owners=["team:bakery"])
def mixed_dough(ingredients: pd.DataFrame) -> pd.DataFrame:
    dough = ingredients.copy()
    dough["dough_g"] = dough["flour_g"] + dough["sugar_g"] + dough["eggs"] * 50
    return dough


@dg.asset(group_name="cakes", owners=["team:bakery"])
def baked_cakes(mixed_dough: pd.DataFrame) -> pd.DataFrame:
    cakes = mixed_dough[["name", "dough_g"]].copy()
    cakes["cakes"] = cakes["dough_g"] // 250
    return cakes


cake_pipeline = dg.define_asset_job("cake_pipeline", selection=dg.AssetSelection.groups("cakes"))
