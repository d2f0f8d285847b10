import json

import dagster as dg

from bakery.defs import cakes, etl, recipe_graphs


def materialize_pipeline(resources):
    return dg.materialize(
        [
            cakes.ingredients,
            cakes.mixed_dough,
            cakes.baked_cakes,
            cakes.cake_analysis,
            recipe_graphs.processed_recipe_data,
            recipe_graphs.cake_analytics,
        ],
        resources=resources,
    )


def test_the_whole_pipeline_materializes_in_process(team_resources):
    result = materialize_pipeline(team_resources)
    assert result.success
    baked = result.output_for_node("baked_cakes").get_dataframe()
    assert len(baked) == 6 and (baked["cakes_baked"] > 0).all()
    assert set(baked.columns) == {"name", "type", "cake_g", "cakes_baked", "slices"}


def test_baked_cakes_are_published_as_a_wandb_table_in_the_bakery_project(
    team_resources, bakery_storage_root
):
    result = materialize_pipeline(team_resources)
    metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("baked_cakes")
    )
    assert metadata["wandb_entity"].value == "bakery"
    assert metadata["wandb_project"].value == "cakes"
    assert metadata["wandb_artifact_type"].value == "dataset"
    cache_root = bakery_storage_root.parent / "artifact-cache"
    assert list(cache_root.rglob("cache/bakery/cakes/baked_cakes/*/entry.json"))


def test_reports_carry_rich_metadata_and_files(team_resources, bakery_storage_root):
    result = materialize_pipeline(team_resources)
    materializations = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    ingredients = materializations["ingredients"]
    assert isinstance(ingredients["table_schema"], dg.TableSchemaMetadataValue)
    assert isinstance(ingredients["recipes"], dg.JsonMetadataValue)
    assert isinstance(ingredients["source"], dg.PathMetadataValue)
    production = json.loads(
        (bakery_storage_root / "reports" / "production_analysis.json").read_text()
    )
    assert production == materializations["production_analysis"]["production"].data
    assert isinstance(materializations["top_cakes"]["top"], dg.MarkdownMetadataValue)
    assert (
        sum(materializations["type_distribution"]["distribution"].data.values())
        == production["cakes_baked"]
    )


def test_graph_multi_asset_yields_both_assets(team_resources):
    result = materialize_pipeline(team_resources)
    summary = result.output_for_node("cake_analytics", "flavor_summary")
    assert summary["recipes"] == 6 and summary["sweetest"] == "red_velvet"
    distribution = result.output_for_node("cake_analytics", "flavor_distribution")
    assert distribution == {"sponge": 2, "loaf": 2, "cheesecake": 1, "layer": 1}


def test_etl_job_runs_in_process():
    result = etl.recipe_etl_job.execute_in_process()
    assert result.success
    assert result.output_for_node("etl_process") == {"rows": 5, "total": 30}
