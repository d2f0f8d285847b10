"""Partitions: one artifact per partition, multi-dimensional keys, and the `partitions` config."""

import pytest
from dagster import (
    AssetIn,
    DailyPartitionsDefinition,
    Definitions,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from dagster_wandb_io import ArtifactNotFoundError, ConfigurationError, WandbArtifactsIOManagerError

from helpers import SEED_RUN_CONFIG, asset_metadata, seed_resources

multi = MultiPartitionsDefinition(
    {
        "vehicle": StaticPartitionsDefinition(["car", "bike"]),
        "color": StaticPartitionsDefinition(["blue", "red"]),
    }
)


def _run(assets, **kw):
    result = materialize(assets, resources=seed_resources(), run_config=SEED_RUN_CONFIG, **kw)
    assert result.success
    return result


@asset(partitions_def=multi, io_manager_key="wandb_artifacts_manager")
def my_asset(context):
    key = context.partition_key
    return f"{key.keys_by_dimension['vehicle']}-{key.keys_by_dimension['color']}"


def test_multi_dimensional_names_are_dotted_and_all_partitions_read():
    names = []
    for key in multi.get_partition_keys():
        names.append(
            asset_metadata(_run([my_asset], partition_key=key), "my_asset")["wandb_artifact_name"]
        )
    # Dimensions in name order (color, vehicle), as Dagster orders multi-partition keys.
    assert sorted(names) == sorted(
        ["my_asset.blue.car", "my_asset.red.car", "my_asset.blue.bike", "my_asset.red.bike"]
    )
    seen = {}

    @asset(
        ins={
            "my_asset": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={
                    "wandb_artifact_configuration": {
                        "partitions": {
                            "blue|car": {"version": "v0"},
                            "red.bike": {"alias": "latest"},
                        }
                    }
                },
            )
        }
    )
    def read_all(my_asset):
        seen.update(my_asset)

    _run([my_asset.to_source_asset(), read_all])
    assert seen == {
        MultiPartitionKey({"vehicle": "car", "color": "blue"}): "car-blue",
        MultiPartitionKey({"vehicle": "car", "color": "red"}): "car-red",
        MultiPartitionKey({"vehicle": "bike", "color": "blue"}): "bike-blue",
        MultiPartitionKey({"vehicle": "bike", "color": "red"}): "bike-red",
    }


daily = DailyPartitionsDefinition(start_date="2023-01-01", end_date="2023-01-04")


@asset(partitions_def=daily, io_manager_key="wandb_artifacts_manager")
def days(context):
    return context.partition_key


def test_one_partition_mapped_one_to_one_returns_the_value():
    for key in daily.get_partition_keys():
        _run([days], partition_key=key)
    seen = {}

    @asset(partitions_def=daily, ins={"days": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def same_day(days):
        seen["v"] = days

    _run([days.to_source_asset(), same_day], partition_key="2023-01-02")
    assert seen["v"] == "2023-01-02"


def test_missing_partitions_are_reported_or_skipped_when_allowed():
    _run([days], partition_key="2023-01-01")

    @asset(ins={"days": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def strict(days):
        return None

    with pytest.raises(
        ArtifactNotFoundError, match=r"2 of 3 partitions.*2023-01-02.*allow_missing_partitions"
    ):
        _run([days.to_source_asset(), strict])

    seen = {}

    @asset(
        ins={
            "days": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"allow_missing_partitions": True},
            )
        }
    )
    def lenient(days):
        seen["v"] = days

    _run([days.to_source_asset(), lenient])
    assert seen["v"] == {"2023-01-01": "2023-01-01"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"get": "x"}, "Put them per partition under `partitions`"),
        ({"partitions": {"2023-01-01": {}}}, "empty"),
        ({"partitions": {"2023-01-01": {"gett": "x"}}}, r"Unknown key\(s\) \['gett'\]"),
        ({"partitions": {"*": {"get": "a", "get_path": "b"}}}, "Both `get` and `get_path`"),
        (
            {"partitions": {"2023-01-01": {"version": "v0", "alias": "a"}}},
            "Both `version` and `alias`",
        ),
        ({"partitions": {"1999-01-01": {"version": "v0"}}}, "not among the partitions"),
        ({"partitions": "*"}, "must map partition keys"),
    ],
)
def test_bad_partition_config_is_explained(config, message):
    _run([days], partition_key="2023-01-01")

    @asset(
        ins={
            "days": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": config},
            )
        }
    )
    def reader(days):
        return None

    with pytest.raises(ConfigurationError, match=message):
        _run([days.to_source_asset(), reader])


def test_partitions_config_on_unpartitioned_input_rejected():
    @asset(io_manager_key="wandb_artifacts_manager")
    def plain():
        return 1

    @asset(
        ins={
            "plain": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"partitions": {"*": {"get": "t"}}}},
            )
        }
    )
    def reader(plain):
        return None

    _run([plain])
    with pytest.raises(ConfigurationError, match="does not read a partitioned asset"):
        _run([plain.to_source_asset(), reader])


def test_several_partitions_in_one_run_rejected():
    @asset(partitions_def=daily, io_manager_key="wandb_artifacts_manager")
    def ranged():
        return 1

    defs = Definitions(assets=[ranged], resources=seed_resources())
    job = defs.resolve_implicit_global_asset_job_def()
    with pytest.raises(WandbArtifactsIOManagerError, match="one run per partition"):
        job.execute_in_process(
            run_config=SEED_RUN_CONFIG,
            tags={
                "dagster/asset_partition_range_start": "2023-01-01",
                "dagster/asset_partition_range_end": "2023-01-03",
            },
        )
