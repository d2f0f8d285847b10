"""Every Python code example of the seed guide (wandb-dagster-integration.en.md), offline.

Each example is kept as written, with only `dagster_wandb` renamed to `dagster_wandb_io`. Where
the guide shows a fragment (a YAML block, `...`, an undefined `my_op`), the smallest completion
is added around it and marked `# completion`. Two examples cannot run as printed against
Dagster 1.13 whatever the IO manager does; the README lists them as errata and the tests below
show both the failure of the printed form and the corrected one.
"""

import inspect
import random
import sys
from pathlib import Path

import pytest
import wandb
import yaml
from dagster import (
    AssetIn,
    AssetKey,
    AssetOut,
    DailyPartitionsDefinition,
    In,
    OpExecutionContext,
    Out,
    SourceAsset,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    build_output_context,
    job,
    load_assets_from_package_module,
    make_values_resource,
    materialize,
    multi_asset,
    op,
    repository,
    with_resources,
)

from dagster_wandb_io import (
    WandbArtifactsIOManager,
    WandbResource,
    wandb_artifacts_io_manager,
    wandb_resource,
)

from helpers import SEED_RUN_CONFIG, asset_metadata, seed_resources

SEED_YAML = """
resources:
 wandb_config:
   config:
     entity: my_entity # replace this with your W&B entity
     project: my_project # replace this with your W&B project
"""


def _materialize(assets, **kwargs):
    result = materialize(
        assets,
        resources=kwargs.pop("resources", seed_resources()),
        run_config=kwargs.pop("run_config", SEED_RUN_CONFIG),
        **kwargs,
    )
    assert result.success
    return result


# --------------------------------------------------------------------------- setup examples


def test_configuration_for_job():
    # completion: the guide calls `my_op()` without defining it.
    @op(
        out=Out(
            metadata={"wandb_artifact_configuration": {"name": "my_artifact", "type": "dataset"}}
        )
    )
    def my_op():
        return [1, 2, 3]

    @job(
        resource_defs={
            "wandb_config": make_values_resource(
                entity=str,
                project=str,
            ),
            "wandb_resource": wandb_resource.configured({"api_key": {"env": "WANDB_API_KEY"}}),
            "io_manager": wandb_artifacts_io_manager,
        }
    )
    def simple_job_example():
        my_op()

    result = simple_job_example.execute_in_process(run_config=yaml.safe_load(SEED_YAML))
    assert result.success
    mats = result.asset_materializations_for_node("my_op")
    assert mats == []  # an op output: the artifact is logged, no asset materialization
    out_meta = next(
        e for e in result.all_events if e.event_type_value == "HANDLED_OUTPUT"
    ).event_specific_data.metadata
    assert out_meta["wandb_artifact_name"].value == "my_artifact"


def test_configuration_for_repository_using_assets():
    from seed_pkg import assets  # the guide's `from . import assets`

    @repository
    def my_repository():
        return [
            *with_resources(
                load_assets_from_package_module(assets),
                resource_defs={
                    "wandb_config": make_values_resource(
                        entity=str,
                        project=str,
                    ),
                    "wandb_resource": wandb_resource.configured(
                        {"api_key": {"env": "WANDB_API_KEY"}}
                    ),
                    "wandb_artifacts_manager": wandb_artifacts_io_manager.configured(
                        {"cache_duration_in_minutes": 60}  # only cache files for one hour
                    ),
                },
                resource_config_by_key={
                    "wandb_config": {
                        "config": {
                            "entity": "my_entity",  # replace this with your W&B entity
                            "project": "my_project",  # replace this with your W&B project
                        }
                    }
                },
            ),
        ]

    result = my_repository.get_implicit_global_asset_job_def().execute_in_process()
    assert result.success
    meta = asset_metadata(result, "my_artifact")
    assert meta["wandb_artifact_type"] == "dataset"
    used = Path(meta["wandb_cache_path"]) / "last_used.json"
    assert '"ttl_minutes": 60' in used.read_text()


# --------------------------------------------------------------------------- writing


def test_write_python_object_then_read_it_back():
    @asset(
        name="my_artifact",
        metadata={
            "wandb_artifact_arguments": {
                "type": "dataset",
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def create_dataset():
        return [1, 2, 3]

    seen = {}

    @asset(ins={"my_artifact": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def check(my_artifact):
        seen["value"] = my_artifact

    _materialize([create_dataset, check])
    assert seen["value"] == [1, 2, 3]


def test_write_wandb_table():
    @asset(
        name="my_artifact",
        metadata={
            "wandb_artifact_arguments": {
                "type": "dataset",
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def create_dataset_in_table():
        return wandb.Table(columns=["a", "b", "c"], data=[[1, 2, 3]])

    seen = {}

    @asset(ins={"my_artifact": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def check(my_artifact):
        seen["table"] = my_artifact.get("Table")

    _materialize([create_dataset_in_table, check])
    assert seen["table"].get_column("a") == [1]


def test_write_wandb_artifact_and_get_table():
    MY_ASSET = "my_asset"

    @asset(
        name=MY_ASSET,
        io_manager_key="wandb_artifacts_manager",
    )
    def create_artifact():
        artifact = wandb.Artifact(MY_ASSET, "dataset")
        table = wandb.Table(columns=["a", "b", "c"], data=[[1, 2, 3]])
        artifact.add(table, "my_table")
        return artifact

    seen = {}

    @asset(
        ins={
            "table": AssetIn(
                key=MY_ASSET,
                metadata={"wandb_artifact_configuration": {"get": "my_table"}},
                input_manager_key="wandb_artifacts_manager",
            )
        }
    )
    def check(table):
        seen["a"] = table.get_column("a")

    result = _materialize([create_artifact, check])
    assert seen["a"] == [1]
    meta = asset_metadata(result, MY_ASSET)
    assert meta["wandb_artifact_type"] == "dataset"


def test_op_example_and_read_from_op():
    @op(
        out=Out(
            metadata={
                "wandb_artifact_configuration": {
                    "name": "my_artifact",
                    "type": "dataset",
                }
            }
        )
    )
    def create_dataset():
        return [1, 2, 3]

    # Erratum: the guide passes `io_manager_key` to @op, which Dagster's @op does not accept.
    with pytest.raises(TypeError, match="io_manager_key"):
        op(
            ins={
                "artifact": In(metadata={"wandb_artifact_configuration": {"name": "my_artifact"}})
            },
            io_manager_key="wandb_artifacts_manager",
        )

    seen = {}

    # The corrected form: the key belongs on the input (`input_manager_key`).
    @op(
        ins={
            "artifact": In(
                metadata={
                    "wandb_artifact_configuration": {
                        "name": "my_artifact",
                    }
                },
                input_manager_key="wandb_artifacts_manager",
            )
        },
    )
    def read_artifact(context, artifact):
        context.log.info(artifact)
        seen["artifact"] = artifact

    @job(resource_defs=seed_resources())
    def write_job():
        create_dataset()

    @job(resource_defs=seed_resources())
    def read_job():
        read_artifact()

    assert write_job.execute_in_process(run_config=SEED_RUN_CONFIG).success
    assert read_job.execute_in_process(run_config=SEED_RUN_CONFIG).success
    assert seen["artifact"] == [1, 2, 3]


def test_asset_example_with_wandb_artifact_configuration():
    @asset(
        name="my_artifact",
        metadata={
            "wandb_artifact_configuration": {
                "type": "dataset",
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def create_dataset():
        return [1, 2, 3]

    result = _materialize([create_dataset])
    assert asset_metadata(result, "my_artifact")["wandb_artifact_name"] == "my_artifact"


def test_multi_asset_example():
    @multi_asset(
        name="create_datasets",
        outs={
            "first_table": AssetOut(
                metadata={
                    "wandb_artifact_configuration": {
                        "type": "training_dataset",
                    }
                },
                io_manager_key="wandb_artifacts_manager",
            ),
            "second_table": AssetOut(
                metadata={
                    "wandb_artifact_configuration": {
                        "type": "validation_dataset",
                    }
                },
                io_manager_key="wandb_artifacts_manager",
            ),
        },
        group_name="my_multi_asset_group",
    )
    def create_datasets():
        first_table = wandb.Table(columns=["a", "b", "c"], data=[[1, 2, 3]])
        second_table = wandb.Table(columns=["d", "e"], data=[[4, 5]])

        return first_table, second_table

    result = _materialize([create_datasets])
    assert asset_metadata(result, "first_table")["wandb_artifact_type"] == "training_dataset"
    assert asset_metadata(result, "second_table")["wandb_artifact_type"] == "validation_dataset"


def test_advanced_write_example(tmp_path):
    # completion: the local paths the guide refers to.
    Path("path/to/directory").mkdir(parents=True)
    Path("path/to/directory/a.txt").write_text("a")
    Path("path/to/data.json").write_text('{"x": 1}')
    Path("path/to/temp").write_text("temporary")

    @asset(
        name="my_advanced_artifact",
        metadata={
            "wandb_artifact_configuration": {
                "type": "dataset",
                "description": "My *Markdown* description",
                "aliases": ["my_first_alias", "my_second_alias"],
                "add_dirs": [
                    {
                        "name": "My directory",
                        "local_path": "path/to/directory",
                    }
                ],
                "add_files": [
                    {
                        "name": "validation_dataset",
                        "local_path": "path/to/data.json",
                    },
                    {
                        "is_tmp": True,
                        "local_path": "path/to/temp",
                    },
                ],
                "add_references": [
                    {
                        "uri": "https://picsum.photos/200/300",
                        "name": "External HTTP reference to an image",
                    },
                    {
                        "uri": "s3://my-bucket/datasets/mnist",
                        "name": "External S3 reference",
                    },
                ],
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def create_advanced_artifact():
        return [1, 2, 3]

    seen = {}

    @asset(
        ins={
            "artifact": AssetIn(
                key="my_advanced_artifact",
                metadata={"wandb_artifact_configuration": {"alias": "my_second_alias"}},
                input_manager_key="wandb_artifacts_manager",
            ),
        }
    )
    def check(artifact):
        seen["artifact"] = artifact

    @asset(
        ins={
            "data": AssetIn(
                key="my_advanced_artifact",
                metadata={"wandb_artifact_configuration": {"get_path": "validation_dataset"}},
                input_manager_key="wandb_artifacts_manager",
            ),
        }
    )
    def check_path(data):
        seen["data"] = data

    result = _materialize([create_advanced_artifact, check, check_path])
    assert seen["artifact"] == [1, 2, 3]
    assert Path(seen["data"]).read_text() == '{"x": 1}'
    meta = asset_metadata(result, "my_advanced_artifact")
    assert "my_first_alias" in meta["wandb_artifact_aliases"]
    entry = (Path(meta["wandb_cache_path"]) / "entry.json").read_text()
    assert "My directory/a.txt" in entry
    assert "s3://my-bucket/datasets/mnist" in entry
    assert "My *Markdown* description" in entry


def test_wandb_artifact_configuration_type_import():
    from dagster_wandb_io import WandbArtifactConfiguration

    config: WandbArtifactConfiguration = {"type": "dataset", "aliases": ["x"]}
    assert config["type"] == "dataset"


# --------------------------------------------------------------------------- partitions


def _daily_partitioned_asset():
    @asset(
        partitions_def=DailyPartitionsDefinition(start_date="2023-01-01", end_date="2023-02-01"),
        name="my_daily_partitioned_asset",
        compute_kind="wandb",
        metadata={
            "wandb_artifact_configuration": {
                "type": "dataset",
            }
        },
    )
    def create_my_daily_partitioned_asset(context):
        partition_key = context.asset_partition_key_for_output()
        context.log.info(f"Creating partitioned asset for {partition_key}")
        return random.randint(0, 100)

    return create_my_daily_partitioned_asset


def test_partitioned_write_and_read_all_and_specific_partitions():
    create = _daily_partitioned_asset()
    keys = create.partitions_def.get_partition_keys()
    assert len(keys) == 31
    dagster_runs = ["2023-01-01", "2023-01-04", "2023-01-05"]
    for key in dagster_runs:
        result = _materialize([create], partition_key=key)
        meta = asset_metadata(result, "my_daily_partitioned_asset")
        assert meta["wandb_artifact_name"] == f"my_daily_partitioned_asset.{key}"
    # The other 28 partitions go through the same IO manager without a Dagster run each,
    # to keep the suite fast.
    manager = WandbArtifactsIOManager(
        wandb_resource=WandbResource(), entity="my_entity", project="my_project"
    )
    for key in keys:
        if key not in dagster_runs:
            manager.handle_output(
                build_output_context(
                    asset_key="my_daily_partitioned_asset",
                    partition_key=key,
                    asset_partitions_def=create.partitions_def,
                    definition_metadata={"wandb_artifact_configuration": {"type": "dataset"}},
                    run_id="0ab2e48b-6d63-4ff5-b160-662cc60145f4",
                ),
                random.randint(0, 100),
            )

    logged = {}

    @asset(
        compute_kind="wandb",
        ins={"my_daily_partitioned_asset": AssetIn()},
        output_required=False,
    )
    def read_all_partitions(context, my_daily_partitioned_asset):
        for partition, content in my_daily_partitioned_asset.items():
            context.log.info(f"partition={partition}, content={content}")
        logged["all"] = dict(my_daily_partitioned_asset)

    _materialize([create.to_source_asset(), read_all_partitions])
    assert sorted(logged["all"]) == keys
    assert all(0 <= v <= 100 for v in logged["all"].values())

    @asset(
        partitions_def=DailyPartitionsDefinition(start_date="2023-01-01", end_date="2023-02-01"),
        compute_kind="wandb",
        ins={
            "my_daily_partitioned_asset": AssetIn(
                partition_mapping=TimeWindowPartitionMapping(start_offset=-1)
            )
        },
        output_required=False,
    )
    def read_specific_partitions(context, my_daily_partitioned_asset):
        for partition, content in my_daily_partitioned_asset.items():
            context.log.info(f"partition={partition}, content={content}")
        logged["specific"] = dict(my_daily_partitioned_asset)

    _materialize([create.to_source_asset(), read_specific_partitions], partition_key="2023-01-05")
    assert sorted(logged["specific"]) == ["2023-01-04", "2023-01-05"]
    assert logged["specific"]["2023-01-04"] == logged["all"]["2023-01-04"]


def test_partitions_configuration_wildcard_specific_version_alias():
    colors = StaticPartitionsDefinition(["yellow", "orange", "blue", "green"])

    def make_writer(suffix: str, aliases: list[str]):
        @asset(
            name="colored",
            partitions_def=colors,
            metadata={"wandb_artifact_configuration": {"aliases": aliases}},
            io_manager_key="wandb_artifacts_manager",
        )
        def colored(context):
            key = context.partition_key
            artifact = wandb.Artifact(f"colored.{key}", "dataset")
            artifact.add(
                wandb.Table(columns=["v"], data=[[f"default-{key}-{suffix}"]]), "default_table_name"
            )
            artifact.add(
                wandb.Table(columns=["v"], data=[[f"custom-{key}-{suffix}"]]), "custom_table_name"
            )
            return artifact

        return colored

    first = make_writer("first", ["special_alias"])
    second = make_writer("second", [])
    for key in ["yellow", "orange", "blue", "green"]:
        _materialize([first], partition_key=key)
    for key in ["yellow", "orange", "blue", "green"]:
        _materialize([second], partition_key=key)

    seen = {}

    @asset(
        ins={
            "colored": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={
                    "wandb_artifact_configuration": {
                        "partitions": {
                            "*": {
                                "get": "default_table_name",
                            },
                            "yellow": {
                                "get": "custom_table_name",
                            },
                            "orange": {
                                "version": "v0",
                            },
                            "blue": {
                                "alias": "special_alias",
                            },
                        }
                    }
                },
            )
        }
    )
    def read_colors(colored):
        seen.update({k: t.get_column("v")[0] for k, t in colored.items()})

    _materialize([first.to_source_asset(), read_colors])
    assert seen == {
        "yellow": "custom-yellow-second",
        "orange": "default-orange-first",
        "blue": "default-blue-first",
        "green": "default-green-second",
    }


# --------------------------------------------------------------------------- reading


def test_read_artifact_created_by_another_asset():
    @asset(name="parent_dagster_asset_name", io_manager_key="wandb_artifacts_manager")
    def parent():
        return {"weights": [0.1, 0.2]}

    seen = {}

    @asset(
        name="my_asset",
        ins={
            "artifact": AssetIn(
                # if you don't want to rename the input argument you can remove 'key'
                key="parent_dagster_asset_name",
                input_manager_key="wandb_artifacts_manager",
            )
        },
    )
    def read_artifact(context, artifact):
        context.log.info(artifact)
        seen["artifact"] = artifact

    _materialize([parent, read_artifact])
    assert seen["artifact"] == {"weights": [0.1, 0.2]}


def test_read_artifact_created_outside_dagster_with_source_asset():
    # Offline, "outside Dagster" means another pipeline wrote it through this package.
    @op(out=Out(metadata={"wandb_artifact_configuration": {"name": "my_artifact", "type": "x"}}))
    def external():
        return "made elsewhere"

    @job(resource_defs=seed_resources())
    def external_job():
        external()

    assert external_job.execute_in_process(run_config=SEED_RUN_CONFIG).success

    my_artifact = SourceAsset(
        key=AssetKey("my_artifact"),  # the name of the W&B Artifact
        description="Artifact created outside Dagster",
        io_manager_key="wandb_artifacts_manager",
    )

    seen = {}

    @asset
    def read_artifact(context, my_artifact):
        context.log.info(my_artifact)
        seen["v"] = my_artifact

    _materialize([my_artifact, read_artifact])
    assert seen["v"] == "made elsewhere"


def test_get_get_path_and_whole_artifact(tmp_path):
    file = tmp_path / "model.bin"
    file.write_bytes(b"\x00weights")

    @asset(name="my_artifact_with_table", io_manager_key="wandb_artifacts_manager")
    def with_table():
        artifact = wandb.Artifact("my_artifact_with_table", "dataset")
        artifact.add(wandb.Table(columns=["a"], data=[[7], [8]]), "my_table")
        return artifact

    @asset(name="my_artifact_with_file", io_manager_key="wandb_artifacts_manager")
    def with_file():
        artifact = wandb.Artifact("my_artifact_with_file", "model")
        artifact.add_file(str(file), name="name_of_file")
        return artifact

    @asset(name="my_artifact", io_manager_key="wandb_artifacts_manager")
    def whole():
        artifact = wandb.Artifact("my_artifact", "dataset")
        artifact.add_file(str(file), name="weights.bin")
        return artifact

    seen = {}

    @asset(
        ins={
            "table": AssetIn(
                key="my_artifact_with_table",
                metadata={
                    "wandb_artifact_configuration": {
                        "get": "my_table",
                    }
                },
                input_manager_key="wandb_artifacts_manager",
            )
        }
    )
    def get_table(context, table):
        context.log.info(table.get_column("a"))
        seen["table"] = table.get_column("a")

    @asset(
        ins={
            "path": AssetIn(
                key="my_artifact_with_file",
                metadata={
                    "wandb_artifact_configuration": {
                        "get_path": "name_of_file",
                    }
                },
                input_manager_key="wandb_artifacts_manager",
            )
        }
    )
    def get_path(context, path):
        context.log.info(path)
        seen["path"] = Path(path).read_bytes()

    @asset(
        ins={
            "artifact": AssetIn(
                key="my_artifact",
                input_manager_key="wandb_artifacts_manager",
            )
        },
    )
    def get_artifact(context, artifact):
        context.log.info(artifact.name)
        seen["name"] = artifact.name
        seen["files"] = artifact.files()
        seen["dir"] = artifact.download()

    _materialize([with_table, with_file, whole, get_table, get_path, get_artifact])
    assert seen["table"] == [7, 8]
    assert seen["path"] == b"\x00weights"
    assert seen["name"] == "my_artifact:v0"
    assert seen["files"] == ["weights.bin"]
    assert (Path(seen["dir"]) / "weights.bin").read_bytes() == b"\x00weights"


def test_joblib_serialized_model_example():
    @asset(
        name="my_joblib_serialized_model",
        compute_kind="Python",
        metadata={
            "wandb_artifact_configuration": {
                "type": "model",
                "serialization_module": {"name": "joblib"},
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def create_model_serialized_with_joblib():
        # This is not a real ML model but this would not be possible with the pickle module
        return lambda x, y: x + y

    seen = {}

    @asset(
        name="inference_result_from_joblib_serialized_model",
        compute_kind="Python",
        ins={
            "my_joblib_serialized_model": AssetIn(
                input_manager_key="wandb_artifacts_manager",
            )
        },
        metadata={
            "wandb_artifact_configuration": {
                "type": "results",
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def use_model_serialized_with_joblib(context: OpExecutionContext, my_joblib_serialized_model):
        inference_result = my_joblib_serialized_model(1, 2)
        context.log.info(inference_result)  # Prints: 3
        seen["result"] = inference_result
        return inference_result

    result = _materialize([create_model_serialized_with_joblib, use_model_serialized_with_joblib])
    assert seen["result"] == 3
    meta = asset_metadata(result, "my_joblib_serialized_model")
    entry = (Path(meta["wandb_cache_path"]) / "entry.json").read_text()
    assert '"source_serialization_module": "joblib"' in entry


def test_onnx_example():
    pytest.importorskip("skl2onnx", reason="skl2onnx is not installed")
    rt = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import numpy
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    @multi_asset(
        compute_kind="Python",
        outs={
            "my_onnx_model": AssetOut(
                metadata={
                    "wandb_artifact_configuration": {
                        "type": "model",
                    }
                },
                io_manager_key="wandb_artifacts_manager",
            ),
            "my_test_set": AssetOut(
                metadata={
                    "wandb_artifact_configuration": {
                        "type": "test_set",
                    }
                },
                io_manager_key="wandb_artifacts_manager",
            ),
        },
        group_name="onnx_example",
    )
    def create_onnx_model():
        # Inspired from https://onnx.ai/sklearn-onnx/

        # Train a model.
        iris = load_iris()
        X, y = iris.data, iris.target
        X_train, X_test, y_train, y_test = train_test_split(X, y)
        clr = RandomForestClassifier(n_estimators=10)  # completion: fewer trees, faster test
        clr.fit(X_train, y_train)

        # Convert into ONNX format
        initial_type = [("float_input", FloatTensorType([None, 4]))]
        onx = convert_sklearn(clr, initial_types=initial_type)

        # Write artifacts (model + test_set)
        return onx.SerializeToString(), {"X_test": X_test, "y_test": y_test}

    seen = {}

    @asset(
        name="experiment_results",
        compute_kind="Python",
        ins={
            "my_onnx_model": AssetIn(
                input_manager_key="wandb_artifacts_manager",
            ),
            "my_test_set": AssetIn(
                input_manager_key="wandb_artifacts_manager",
            ),
        },
        group_name="onnx_example",
    )
    def use_onnx_model(context, my_onnx_model, my_test_set):
        # Inspired from https://onnx.ai/sklearn-onnx/

        # Compute the prediction with ONNX Runtime
        sess = rt.InferenceSession(my_onnx_model)
        input_name = sess.get_inputs()[0].name
        label_name = sess.get_outputs()[0].name
        pred_onx = sess.run(
            [label_name], {input_name: my_test_set["X_test"].astype(numpy.float32)}
        )[0]
        context.log.info(pred_onx)
        seen["pred"] = pred_onx
        seen["y"] = my_test_set["y_test"]
        return pred_onx

    _materialize([create_onnx_model, use_onnx_model])
    assert len(seen["pred"]) == len(seen["y"])
    assert (seen["pred"] == seen["y"]).mean() > 0.7


# --------------------------------------------------------------------------- best practices


def test_best_practice_run_id_is_dagster_run_id():
    seen = {}

    @op(out=Out(metadata={"wandb_artifact_configuration": {"name": "trained", "type": "model"}}))
    def train(context):
        wandb.init(
            id=context.run_id,
            resume="allow",
            project="my_project",  # completion of the guide's `...`
            entity="my_entity",
        )
        wandb.log({"loss": 0.25})
        seen["run"] = wandb.run
        return {"w": [1.0]}

    @job(resource_defs=seed_resources())
    def training_job():
        train()

    try:
        result = training_job.execute_in_process(run_config=SEED_RUN_CONFIG)
        assert result.success
        meta = next(
            e for e in result.all_events if e.event_type_value == "HANDLED_OUTPUT"
        ).event_specific_data.metadata
        assert meta["wandb_run_id"].value == result.run_id
        # The user's run was reused, not finished behind their back.
        assert wandb.run is seen["run"]
    finally:
        wandb.finish()


def test_best_practice_own_resumable_run_id():
    wandb.init(
        id="my_resumable_run_id",
        resume="allow",
        project="my_project",  # completion of the guide's `...`
        entity="my_entity",
    )
    try:

        @op(out=Out(metadata={"wandb_artifact_configuration": {"name": "m", "type": "model"}}))
        def my_op():
            return 1

        # Erratum: the guide's job lists only "io_manager"; the IO manager (as in every other
        # example) also needs the `wandb_config` and `wandb_resource` resources.
        @job(
            resource_defs={
                **seed_resources(),
                "io_manager": wandb_artifacts_io_manager.configured(
                    {"wandb_run_id": "my_resumable_run_id"}
                ),
            }
        )
        def my_job():  # completion: the guide's decorator has no function
            my_op()

        result = my_job.execute_in_process(run_config=SEED_RUN_CONFIG)
        assert result.success
        meta = next(
            e for e in result.all_events if e.event_type_value == "HANDLED_OUTPUT"
        ).event_specific_data.metadata
        assert meta["wandb_run_id"].value == "my_resumable_run_id"
    finally:
        wandb.finish()


# --------------------------------------------------------------------------- launch


class _FakeQueuedRun:
    def __init__(self) -> None:
        self.waited = False

    def wait_until_finished(self) -> None:
        self.waited = True


class FakeLaunchClient:
    def __init__(self) -> None:
        self.agent_configs: list[dict] = []
        self.enqueued: list[dict] = []
        self.launched: list[dict] = []
        self.queued = _FakeQueuedRun()

    def run_agent(self, config):
        self.agent_configs.append(config)

    def enqueue(self, **kwargs):
        self.enqueued.append(kwargs)
        return self.queued

    def launch(self, **kwargs):
        self.launched.append(kwargs)


@pytest.fixture
def fake_launch(monkeypatch):
    from dagster_wandb_io.launch import ops as launch_ops

    fake = FakeLaunchClient()
    monkeypatch.setattr(launch_ops, "get_launch_client", lambda resource: fake)
    return fake


LAUNCH_AGENT_YAML = """
resources:
 wandb_config:
   config:
     entity: my_entity # replace this with your W&B entity
     project: my_project # replace this with your W&B project
ops:
 run_launch_agent:
   config:
     max_jobs: -1
     queues:
       - my_dagster_queue
"""

LAUNCH_JOB_YAML = """
resources:
 wandb_config:
   config:
     entity: my_entity # replace this with your W&B entity
     project: my_project # replace this with your W&B project
ops:
 my_launched_job:
   config:
     entry_point:
       - python
       - train.py
     queue: my_dagster_queue
     uri: https://github.com/wandb/example-dagster-integration-with-launch
"""


def test_launch_agent_example(fake_launch):
    from dagster import job, make_values_resource

    from dagster_wandb_io.launch.ops import run_launch_agent
    from dagster_wandb_io.resources import wandb_resource

    @job(
        resource_defs={
            "wandb_config": make_values_resource(
                entity=str,
                project=str,
            ),
            "wandb_resource": wandb_resource.configured({"api_key": {"env": "WANDB_API_KEY"}}),
        },
    )
    def run_launch_agent_example():
        run_launch_agent()

    result = run_launch_agent_example.execute_in_process(
        run_config=yaml.safe_load(LAUNCH_AGENT_YAML)
    )
    assert result.success
    (config,) = fake_launch.agent_configs
    assert config["entity"] == "my_entity"
    assert config["queues"] == ["my_dagster_queue"] and config["max_jobs"] == -1
    # The config is valid for wandb 0.31's agent.
    from wandb.sdk.launch.agent.config import AgentConfig

    AgentConfig(**config)


def test_launch_job_example(fake_launch):
    from dagster import job, make_values_resource

    from dagster_wandb_io.launch.ops import run_launch_job
    from dagster_wandb_io.resources import wandb_resource

    @job(
        resource_defs={
            "wandb_config": make_values_resource(
                entity=str,
                project=str,
            ),
            "wandb_resource": wandb_resource.configured({"api_key": {"env": "WANDB_API_KEY"}}),
        },
    )
    def run_launch_job_example():
        run_launch_job.alias("my_launched_job")()  # we rename the job with an alias

    result = run_launch_job_example.execute_in_process(run_config=yaml.safe_load(LAUNCH_JOB_YAML))
    assert result.success
    (kwargs,) = fake_launch.enqueued
    assert kwargs["queue_name"] == "my_dagster_queue"
    assert kwargs["entry_point"] == ["python", "train.py"]
    assert kwargs["entity"] == "my_entity" and kwargs["project"] == "my_project"
    assert fake_launch.queued.waited  # synchronous by default
    # Every keyword is one wandb 0.31's public launch_add accepts.
    from wandb.sdk.launch import launch_add

    inspect.signature(launch_add).bind(**kwargs)


def test_seed_imports_resolve():
    import dagster_wandb_io.launch.ops as ops_module
    import dagster_wandb_io.resources as resources_module

    assert ops_module.run_launch_agent and ops_module.run_launch_job
    assert resources_module.wandb_resource
    assert "dagster_wandb" not in sys.modules
