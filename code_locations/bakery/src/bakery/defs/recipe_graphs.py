"""Assets built from ops: a @graph_asset and a @graph_multi_asset over the recipe files."""

from typing import Any

import dagster as dg

from bakery.recipes import SAMPLE_RECIPES_DIR, load_recipes

OWNERS = ["team:bakery"]


@dg.op
def fetch_recipes() -> list[dict[str, Any]]:
    return [recipe.as_dict() for recipe in load_recipes(SAMPLE_RECIPES_DIR)]


@dg.op
def process_recipes(recipes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scales every recipe to the share of each ingredient in 100 g of dough."""
    processed = []
    for recipe in recipes:
        total = sum(recipe["ingredients"].values())
        shares = {
            name: round(100 * amount / total, 1) for name, amount in recipe["ingredients"].items()
        }
        processed.append({"name": recipe["name"], "per_100": shares})
    return processed


@dg.graph_asset(group_name="recipes", owners=OWNERS)
def processed_recipe_data() -> list[dict[str, Any]]:
    return process_recipes(fetch_recipes())


@dg.op
def fetch_cake_data() -> list[dict[str, Any]]:
    return [recipe.as_dict() for recipe in load_recipes(SAMPLE_RECIPES_DIR)]


@dg.op(out={"summary": dg.Out(), "distribution": dg.Out()})
def analyze_flavors(cakes: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    sweetness = {cake["name"]: cake["ingredients"].get("sugar_g", 0) for cake in cakes}
    summary = {
        "recipes": len(cakes),
        "sweetest": max(sweetness, key=sweetness.__getitem__),
        "mean_bake_minutes": round(sum(cake["bake_minutes"] for cake in cakes) / len(cakes), 1),
    }
    distribution: dict[str, int] = {}
    for cake in cakes:
        distribution[cake["type"]] = distribution.get(cake["type"], 0) + 1
    return summary, distribution


@dg.graph_multi_asset(
    outs={
        "flavor_summary": dg.AssetOut(description="What the recipes have in common"),
        "flavor_distribution": dg.AssetOut(description="Recipes per cake type"),
    },
    group_name="recipes",
)
def cake_analytics():
    summary, distribution = analyze_flavors(fetch_cake_data())
    return {"flavor_summary": summary, "flavor_distribution": distribution}
