"""Recipe files: the one place that says what a valid recipe is."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SAMPLE_RECIPES_DIR = Path(__file__).parent / "sample_data" / "recipes"
RECIPE_TYPES = ("sponge", "loaf", "cheesecake", "layer")
# Grams an ingredient counted in pieces adds to the dough.
PIECE_WEIGHTS_G = {"eggs": 50, "lemon": 100}


class RecipeError(ValueError):
    """A recipe file that cannot be used; the message names the file and what to fix."""


@dataclass(frozen=True)
class Recipe:
    name: str
    type: str
    servings: int
    bake_minutes: int
    oven_c: int
    ingredients: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def dough_g(self) -> float:
        return sum(
            amount * PIECE_WEIGHTS_G.get(ingredient, 1)
            for ingredient, amount in self.ingredients.items()
        )


def parse_recipe(path: Path) -> Recipe:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path.name}: cannot be read ({error})") from error
    except json.JSONDecodeError as error:
        raise RecipeError(
            f"{path.name}: not valid JSON ({error.msg} at line {error.lineno})"
        ) from error
    if not isinstance(raw, dict):
        raise RecipeError(f"{path.name}: must hold a JSON object, not {type(raw).__name__}")
    problems = []
    if not isinstance(raw.get("name"), str) or not raw.get("name"):
        problems.append('"name" must be a non-empty string')
    if raw.get("type") not in RECIPE_TYPES:
        problems.append(f'"type" must be one of {", ".join(RECIPE_TYPES)}')
    for field in ("servings", "bake_minutes", "oven_c"):
        if not isinstance(raw.get(field), int) or raw[field] <= 0:
            problems.append(f'"{field}" must be a positive integer')
    ingredients = raw.get("ingredients")
    if not isinstance(ingredients, dict) or not ingredients:
        problems.append('"ingredients" must be a non-empty object of amounts')
    elif not all(
        isinstance(amount, int | float) and not isinstance(amount, bool) and amount > 0
        for amount in ingredients.values()
    ):
        problems.append('every amount in "ingredients" must be a positive number')
    if problems:
        raise RecipeError(f"{path.name}: " + "; ".join(problems))
    return Recipe(
        name=raw["name"],
        type=raw["type"],
        servings=raw["servings"],
        bake_minutes=raw["bake_minutes"],
        oven_c=raw["oven_c"],
        ingredients={key: float(value) for key, value in ingredients.items()},
    )


def load_recipes(*folders: Path) -> list[Recipe]:
    """Every recipe in these folders, in name order; a later folder overrides a same name."""
    recipes: dict[str, Recipe] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            recipe = parse_recipe(path)
            recipes[recipe.name] = recipe
    return [recipes[name] for name in sorted(recipes)]
