"""New recipes arrive as JSON files in the bakery's inbox; each becomes one ingest run."""

import shutil
from pathlib import Path

import dagster as dg

from bakery.recipes import RecipeError, parse_recipe
from bakery.storage import BakeryStorage


class RecipeFile(dg.Config):
    file_path: str


@dg.op
def ingest_recipe(
    context: dg.OpExecutionContext, config: RecipeFile, bakery_storage: BakeryStorage
) -> dg.Output[str]:
    """Validates the file again (it may have changed since the sensor saw it) and catalogs it."""
    source = Path(config.file_path)
    try:
        recipe = parse_recipe(source)
    except RecipeError as error:
        raise dg.Failure(
            description=f"{error}. Fix the file and drop it in the inbox again."
        ) from error
    target = bakery_storage.catalog / f"{recipe.name}.json"
    shutil.copyfile(source, target)
    context.log.info(f"cataloged {recipe.name} from {source.name}")
    return dg.Output(
        recipe.name,
        metadata={"catalog_file": dg.MetadataValue.path(str(target)), "dough_g": recipe.dough_g},
    )


@dg.job(description="Adds one recipe file from the inbox to the bakery's catalog.")
def process_new_recipe() -> None:
    ingest_recipe()


@dg.sensor(job=process_new_recipe, minimum_interval_seconds=30)
def new_recipe_sensor(context: dg.SensorEvaluationContext, bakery_storage: BakeryStorage):
    """Requests one run per recipe file in the inbox (run_key = file name, so once per file)."""
    files = sorted(bakery_storage.inbox.glob("*.json"))
    if not files:
        return dg.SkipReason(f"No recipe files in {bakery_storage.inbox}.")
    run_requests = []
    malformed = []
    for path in files:
        try:
            parse_recipe(path)
        except RecipeError as error:
            malformed.append(str(error))
            continue
        run_requests.append(
            dg.RunRequest(
                run_key=path.name,
                run_config={"ops": {"ingest_recipe": {"config": {"file_path": str(path)}}}},
            )
        )
    if malformed:
        context.log.warning("Skipped malformed recipe files: " + " | ".join(malformed))
    if not run_requests:
        return dg.SkipReason(
            "Skipped malformed recipe file(s): " + " | ".join(malformed) + ". Fix or remove them."
        )
    return dg.SensorResult(run_requests=run_requests)
