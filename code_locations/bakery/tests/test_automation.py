"""The daily schedule and the inbox sensor, evaluated with Dagster's test APIs."""

import datetime
import json

import dagster as dg

from bakery.definitions import defs
from bakery.defs.cakes import daily_cake_production, ingredients
from bakery.defs.inbox import new_recipe_sensor, process_new_recipe
from bakery.storage import BakeryStorage

GOOD_RECIPE = {
    "name": "apple_crumble",
    "type": "loaf",
    "servings": 8,
    "bake_minutes": 40,
    "oven_c": 180,
    "ingredients": {"flour_g": 200, "apple_g": 500, "butter_g": 120},
}


def storage(root) -> BakeryStorage:
    return BakeryStorage(root=str(root))


def test_schedule_runs_the_whole_pipeline_daily_at_nine():
    assert daily_cake_production.cron_schedule == "0 9 * * *"
    job = defs().resolve_job_def(daily_cake_production.job_name)
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"ingredients", "mixed_dough", "baked_cakes", "top_cakes"} <= keys
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime.datetime(2026, 11, 23, 9, tzinfo=datetime.UTC)
    )
    run_requests = list(daily_cake_production.evaluate_tick(context).run_requests or [])
    assert len(run_requests) == 1


def test_sensor_skips_an_empty_inbox(bakery_storage_root):
    context = dg.build_sensor_context(resources={"bakery_storage": storage(bakery_storage_root)})
    result = new_recipe_sensor.evaluate_tick(context)
    assert not result.run_requests
    assert "No recipe files" in result.skip_message


def test_sensor_requests_one_run_per_new_file_keyed_by_file_name(bakery_storage_root):
    inbox = storage(bakery_storage_root).inbox
    for name in ("apple_crumble", "pear_tart"):
        (inbox / f"{name}.json").write_text(json.dumps({**GOOD_RECIPE, "name": name}))
    context = dg.build_sensor_context(resources={"bakery_storage": storage(bakery_storage_root)})
    result = new_recipe_sensor.evaluate_tick(context)
    assert sorted(request.run_key for request in result.run_requests) == [
        "apple_crumble.json",
        "pear_tart.json",
    ]
    config = result.run_requests[0].run_config["ops"]["ingest_recipe"]["config"]
    assert config["file_path"].endswith("apple_crumble.json")


def test_sensor_gives_a_skip_reason_for_a_malformed_file_instead_of_crashing(bakery_storage_root):
    inbox = storage(bakery_storage_root).inbox
    (inbox / "broken.json").write_text("{not json")
    (inbox / "no_sugar_list.json").write_text(json.dumps({**GOOD_RECIPE, "ingredients": []}))
    context = dg.build_sensor_context(resources={"bakery_storage": storage(bakery_storage_root)})
    result = new_recipe_sensor.evaluate_tick(context)
    assert not result.run_requests
    assert "broken.json: not valid JSON" in result.skip_message
    assert 'no_sugar_list.json: "ingredients" must be a non-empty object' in result.skip_message


def test_sensor_still_requests_runs_for_good_files_beside_a_malformed_one(bakery_storage_root):
    inbox = storage(bakery_storage_root).inbox
    (inbox / "broken.json").write_text("[]")
    (inbox / "apple_crumble.json").write_text(json.dumps(GOOD_RECIPE))
    context = dg.build_sensor_context(resources={"bakery_storage": storage(bakery_storage_root)})
    result = new_recipe_sensor.evaluate_tick(context)
    assert [request.run_key for request in result.run_requests] == ["apple_crumble.json"]


def test_ingested_recipe_reaches_the_catalog_and_the_next_pipeline_run(bakery_storage_root):
    bakery_storage = storage(bakery_storage_root)
    recipe_file = bakery_storage.inbox / "apple_crumble.json"
    recipe_file.write_text(json.dumps(GOOD_RECIPE))
    ingest = process_new_recipe.execute_in_process(
        run_config={"ops": {"ingest_recipe": {"config": {"file_path": str(recipe_file)}}}},
        resources={"bakery_storage": bakery_storage},
    )
    assert ingest.success
    assert (bakery_storage.catalog / "apple_crumble.json").exists()
    pipeline = dg.materialize([ingredients], resources={"bakery_storage": bakery_storage})
    assert "apple_crumble" in {recipe["name"] for recipe in pipeline.output_for_node("ingredients")}


def test_ingest_fails_clearly_when_the_file_went_bad_after_the_sensor_saw_it(bakery_storage_root):
    bakery_storage = storage(bakery_storage_root)
    recipe_file = bakery_storage.inbox / "apple_crumble.json"
    recipe_file.write_text('{"name": "apple_crumble"}')
    result = process_new_recipe.execute_in_process(
        run_config={"ops": {"ingest_recipe": {"config": {"file_path": str(recipe_file)}}}},
        resources={"bakery_storage": bakery_storage},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("ingest_recipe")
    assert "Fix the file and drop it in the inbox again" in failure.user_failure_data.description
