"""Writing and reading through Dagster: serialization modules, W&B objects, metadata, config."""

import copy
import json
import pickle
import platform
from pathlib import Path

import numpy as np
import pytest
import wandb
from dagster import (
    AssetIn,
    AssetKey,
    AssetOut,
    Definitions,
    In,
    Out,
    Output,
    RetryPolicy,
    asset,
    job,
    materialize,
    multi_asset,
    op,
)

from dagster_wandb_io import (
    ArtifactNotFoundError,
    ConfigurationError,
    SerializationError,
    WandbArtifactsIOManager,
    WandbResource,
    __version__,
)
from dagster_wandb_io.naming import artifact_name_for_asset_key, artifact_name_for_partition

from helpers import SEED_RUN_CONFIG, asset_metadata, seed_resources


def _run(assets, resources=None, run_config=None, **kw):
    return materialize(
        assets,
        resources=resources or seed_resources(),
        run_config=SEED_RUN_CONFIG if run_config is None else run_config,
        **kw,
    )


def _entry(meta) -> dict:
    return json.loads((Path(meta["wandb_cache_path"]) / "entry.json").read_text())


@pytest.mark.parametrize(
    ("module", "parameters"),
    [
        ("pickle", {}),
        ("pickle", {"protocol": 4}),
        ("dill", {}),
        ("dill", {"protocol": 4}),
        ("cloudpickle", {}),
        ("joblib", {"compress": 3}),
        ("joblib", {"compress": 3, "protocol": 4}),
    ],
)
def test_serialization_modules_round_trip(module, parameters):
    value = {"array": np.arange(50_000, dtype=np.float64), "items": [1, "two", 3.0]}

    @asset(
        metadata={
            "wandb_artifact_configuration": {
                "type": "dataset",
                "serialization_module": {"name": module, "parameters": parameters},
            }
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def produced():
        return value

    seen = {}

    @asset(ins={"produced": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def consumed(produced):
        seen["v"] = produced

    result = _run([produced, consumed])
    assert result.success
    np.testing.assert_array_equal(seen["v"]["array"], value["array"])
    assert seen["v"]["items"] == value["items"]
    meta = _entry(asset_metadata(result, "produced"))["metadata"]
    assert meta["source_serialization_module"] == module
    assert meta["source_pickle_protocol_used"] == parameters.get(
        "protocol", pickle.HIGHEST_PROTOCOL
    )
    assert meta["source_integration"] == "dagster_wandb_io"
    assert meta["source_integration_version"] == __version__
    assert meta["source_python_version"] == platform.python_version()
    assert meta["source_dagster_wandb_io_signed"] is True
    if module != "pickle":
        assert meta[f"source_{module}_version_used"]


def _fn_user(module, seen):
    @asset(ins={"f": AssetIn(key=f"fn_{module}", input_manager_key="wandb_artifacts_manager")})
    def use(f):
        seen["r"] = f(2)

    return use


def test_dill_and_cloudpickle_store_closures():
    factor = 3

    def make():
        return lambda x: x * factor

    for module in ("dill", "cloudpickle"):

        @asset(
            name=f"fn_{module}",
            metadata={"wandb_artifact_configuration": {"serialization_module": {"name": module}}},
            io_manager_key="wandb_artifacts_manager",
        )
        def fn():
            return make()

        seen: dict = {}
        assert _run([fn, _fn_user(module, seen)]).success
        assert seen["r"] == 6


def test_metadata_on_both_sides_and_user_metadata_not_mutated():
    config = {
        "wandb_artifact_configuration": {
            "type": "model",
            "description": "desc",
            "aliases": ["prod"],
            "serialization_module": {"name": "pickle", "parameters": {"protocol": 4}},
        }
    }
    before = copy.deepcopy(config)

    @asset(name="my_model", metadata=config, io_manager_key="wandb_artifacts_manager")
    def my_model():
        return {"w": 1}

    result = _run([my_model])
    _run([my_model])  # a second run must not see aliases appended by the first
    assert config == before
    meta = asset_metadata(result, "my_model")
    for key in (
        "dagster_run_id",
        "wandb_run_id",
        "wandb_run_name",
        "wandb_run_path",
        "wandb_run_url",
        "wandb_artifact_id",
        "wandb_artifact_name",
        "wandb_artifact_type",
        "wandb_artifact_version",
        "wandb_artifact_size",
        "wandb_artifact_url",
        "wandb_entity",
        "wandb_project",
    ):
        assert key in meta, key
    assert meta["wandb_run_id"] == result.run_id
    assert meta["wandb_run_name"] == f"dagster-run-{result.run_id[:8]}"
    assert meta["wandb_run_path"] == f"my_entity/my_project/{result.run_id}"
    assert meta["wandb_entity"] == "my_entity" and meta["wandb_project"] == "my_project"
    assert meta["wandb_artifact_type"] == "model" and meta["wandb_artifact_version"] == "v0"
    assert meta["wandb_artifact_size"] > 0
    assert set(meta["wandb_artifact_aliases"].split(", ")) == {
        "prod",
        "latest",
        f"dagster-run-{result.run_id[:8]}",
    }
    entry = _entry(meta)
    assert entry["description"] == "desc"
    w = entry["metadata"]
    assert w["source_integration"] == "dagster_wandb_io"
    assert w["source_pickle_protocol_used"] == 4
    assert w["source_dagster_run_id"] == result.run_id


def test_offline_run_recorded_on_volume_with_tag(base_dir):
    @asset(io_manager_key="wandb_artifacts_manager")
    def thing():
        return 1

    result = _run([thing])
    run_dirs = list(
        (base_dir / "dagster_wandb_io/wandb/runs/my_entity/my_project").glob(
            f"{result.run_id}/*/wandb/offline-run-*"
        )
    )
    assert len(run_dirs) == 1
    (wandb_file,) = run_dirs[0].glob("run-*.wandb")
    # The offline run's transaction log holds the artifact record that `wandb sync` uploads.
    assert b"output.pickle" in wandb_file.read_bytes()
    staging = list((base_dir / "dagster_wandb_io/wandb/staging").glob("*/output.pickle"))
    assert staging, "offline artifacts keep their files on the volume for `wandb sync`"
    assert not list(Path("/tmp").glob("wandb-artifacts*/**/output.pickle"))


def test_offline_versions_and_aliases():
    values = iter([1, 2, 2])

    @asset(io_manager_key="wandb_artifacts_manager")
    def counter():
        return next(values)

    versions = [
        asset_metadata(_run([counter]), "counter")["wandb_artifact_version"] for _ in range(3)
    ]
    assert versions == ["v0", "v1", "v1"]  # same content -> same version, like W&B

    seen = {}

    @asset(
        ins={
            "counter": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"version": "v0"}},
            )
        }
    )
    def old(counter):
        seen["old"] = counter

    _run([counter.to_source_asset(), old])
    assert seen["old"] == 1


def test_op_outputs_and_inputs_through_job():
    @op(out=Out(metadata={"wandb_artifact_configuration": {"name": "op_data", "type": "dataset"}}))
    def produce():
        return {"a": 1}

    seen = {}

    @op
    def consume(data):
        # No In metadata: the name (and this run's version) come from the upstream Out.
        seen["v"] = data["a"] + 1

    @job(resource_defs=seed_resources())
    def pipeline():
        consume(produce())

    result = pipeline.execute_in_process(run_config=SEED_RUN_CONFIG)
    assert result.success
    assert seen["v"] == 2


def test_multi_asset_with_pickled_outputs():
    @multi_asset(
        outs={
            "left": AssetOut(io_manager_key="wandb_artifacts_manager"),
            "right": AssetOut(
                io_manager_key="wandb_artifacts_manager",
                metadata={
                    "wandb_artifact_configuration": {"serialization_module": {"name": "dill"}}
                },
            ),
        }
    )
    def pair():
        return [1], [2]

    seen = {}

    @asset(
        ins={
            "left": AssetIn(input_manager_key="wandb_artifacts_manager"),
            "right": AssetIn(input_manager_key="wandb_artifacts_manager"),
        }
    )
    def both(left, right):
        seen["v"] = left + right

    assert _run([pair, both]).success
    assert seen["v"] == [1, 2]


def test_a_step_that_runs_twice_in_one_run_publishes_its_artifact_once():
    """At-least-once delivery: a step re-executed in the same run (a redelivered Celery task, a
    retry after a partial failure) must not publish a second, different version."""
    attempts = []

    @multi_asset(
        outs={
            "model": AssetOut(io_manager_key="wandb_artifacts_manager"),
            "report": AssetOut(io_manager_key="wandb_artifacts_manager"),
        },
        retry_policy=RetryPolicy(max_retries=1),
    )
    def training():
        attempts.append(len(attempts))
        # Non-deterministic, as training is: each attempt makes a different model.
        yield Output({"weights": [len(attempts)]}, "model")
        if len(attempts) == 1:
            raise RuntimeError("worker lost after the model was published")
        yield Output("fine", "report")

    seen = {}

    @asset(ins={"model": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def evaluation(model):
        seen["model"] = model

    first_run = _run([training, evaluation])
    assert first_run.success and attempts == [0, 1]
    published = {
        (
            entry.metadata["wandb_artifact_version"].value,
            entry.metadata["wandb_artifact_digest"].value,
        )
        for entry in (
            event.materialization
            for event in first_run.get_asset_materialization_events()
            if event.materialization.asset_key == AssetKey("model")
        )
    }
    assert published == {("v0", asset_metadata(first_run, "model")["wandb_artifact_digest"])}
    assert seen["model"] == {"weights": [1]}, "readers see the first publication"

    second_run = _run([training, evaluation])
    assert asset_metadata(second_run, "model")["wandb_artifact_version"] == "v1"
    assert seen["model"] == {"weights": [3]}, "a new run publishes a new version"


def test_multi_part_asset_keys_do_not_collide():
    @asset(key_prefix=["team_a"], io_manager_key="wandb_artifacts_manager")
    def features():
        return "features"

    @asset(key_prefix=["team_a"], io_manager_key="wandb_artifacts_manager")
    def labels():
        return "labels"

    seen = {}

    @asset(
        ins={
            "f": AssetIn(key=["team_a", "features"], input_manager_key="wandb_artifacts_manager"),
            "l": AssetIn(key=["team_a", "labels"], input_manager_key="wandb_artifacts_manager"),
        }
    )
    def both(f, l):  # noqa: E741
        seen["v"] = (f, l)

    result = _run([features, labels, both])
    assert seen["v"] == ("features", "labels")
    assert (
        asset_metadata(result, ["team_a", "features"])["wandb_artifact_name"] == "team_a--features"
    )
    assert asset_metadata(result, ["team_a", "labels"])["wandb_artifact_name"] == "team_a--labels"


def test_name_mapping_rules():
    assert artifact_name_for_asset_key(["features"]) == "features"
    assert artifact_name_for_asset_key(["team_a", "features"]) == "team_a--features"
    assert artifact_name_for_asset_key(["team_a", "labels"]) != "team_a--features"
    with pytest.raises(ConfigurationError, match="reserved"):
        artifact_name_for_asset_key(["team_a--features"])
    with pytest.raises(ConfigurationError, match="letters, digits"):
        artifact_name_for_asset_key(["bad name"])
    assert artifact_name_for_partition("a", "2023-01-01") == "a.2023-01-01"
    assert artifact_name_for_partition("a", "2023-01-01-10:00") == "a.2023-01-01-10_3A_00"


def test_pythonic_resources_and_env_entity_project(monkeypatch):
    monkeypatch.setenv("WANDB_ENTITY", "env_entity")
    monkeypatch.setenv("WANDB_PROJECT", "env_project")

    @asset(io_manager_key="io")
    def pythonic():
        return 42

    seen = {}

    @asset(ins={"pythonic": AssetIn(input_manager_key="io")})
    def reader(pythonic):
        seen["v"] = pythonic

    defs = Definitions(
        assets=[pythonic, reader],
        resources={"io": WandbArtifactsIOManager(wandb_resource=WandbResource(mode="offline"))},
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process()
    assert result.success and seen["v"] == 42
    meta = asset_metadata(result, "pythonic")
    assert (meta["wandb_entity"], meta["wandb_project"]) == ("env_entity", "env_project")


def test_another_teams_artifact_is_read_from_its_entity_and_project():
    """Teams publish under their own entity/project; a consumer names the producer's."""

    def io(entity: str, project: str) -> WandbArtifactsIOManager:
        return WandbArtifactsIOManager(
            wandb_resource=WandbResource(mode="offline"), entity=entity, project=project
        )

    @asset(io_manager_key="io")
    def baked_cakes():
        return {"chocolate": 12}

    assert materialize([baked_cakes], resources={"io": io("bakery", "cakes")}).success

    seen = {}
    producer = {"wandb_artifact_configuration": {"entity": "bakery", "project": "cakes"}}

    @asset(ins={"cakes": AssetIn(key="baked_cakes", input_manager_key="io", metadata=producer)})
    def forecast(cakes):
        seen["cakes"] = cakes

    ml_io = io("ml", "forecasting")
    result = materialize(
        [forecast, baked_cakes.to_source_asset()], resources={"io": ml_io}, selection=[forecast]
    )
    assert result.success and seen["cakes"] == {"chocolate": 12}

    @asset(ins={"cakes": AssetIn(key="baked_cakes", input_manager_key="io")})
    def forecast_from_own_project(cakes):
        return cakes

    with pytest.raises(ArtifactNotFoundError, match="ml/forecasting"):
        materialize(
            [forecast_from_own_project, baked_cakes.to_source_asset()],
            resources={"io": ml_io},
            selection=[forecast_from_own_project],
        )


def test_missing_entity_is_a_clear_error():
    @asset(io_manager_key="io")
    def x():
        return 1

    with pytest.raises(ConfigurationError, match="WANDB_ENTITY"):
        materialize([x], resources={"io": WandbArtifactsIOManager()})


def test_unknown_config_keys_rejected_with_allowed_list():
    @asset(
        metadata={"wandb_artifact_configuration": {"type": "x", "typo_key": 1}},
        io_manager_key="wandb_artifacts_manager",
    )
    def bad():
        return 1

    with pytest.raises(ConfigurationError, match=r"typo_key.*Allowed keys: \['add_dirs'"):
        _run([bad])


def test_unknown_io_manager_config_key_rejected():
    from dagster._core.errors import DagsterInvalidConfigError

    @asset(io_manager_key="wandb_artifacts_manager")
    def x():
        return 1

    with pytest.raises(DagsterInvalidConfigError, match="cache_duration"):
        _run([x], resources=seed_resources(cache_minutes=5))


def test_name_on_asset_output_rejected():
    @asset(
        metadata={"wandb_artifact_configuration": {"name": "other"}},
        io_manager_key="wandb_artifacts_manager",
    )
    def named():
        return 1

    with pytest.raises(ConfigurationError, match="Remove `name`"):
        _run([named])


def test_op_output_without_name_rejected():
    @op
    def unnamed():
        return 1

    @job(resource_defs=seed_resources())
    def j():
        unnamed()

    with pytest.raises(ConfigurationError, match="`name` is missing"):
        j.execute_in_process(run_config=SEED_RUN_CONFIG)


def test_unknown_serialization_module_rejected():
    @asset(
        metadata={"wandb_artifact_configuration": {"serialization_module": {"name": "marshal"}}},
        io_manager_key="wandb_artifacts_manager",
    )
    def x():
        return 1

    with pytest.raises(ConfigurationError, match=r"one of \['pickle', 'dill'"):
        _run([x])


def test_missing_serialization_module_names_the_fix(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dill", None)  # makes `import dill` fail

    @asset(
        metadata={"wandb_artifact_configuration": {"serialization_module": {"name": "dill"}}},
        io_manager_key="wandb_artifacts_manager",
    )
    def x():
        return 1

    with pytest.raises(SerializationError, match=r"pip install 'dagster-wandb-io\[dill\]'"):
        _run([x])


def test_unpicklable_object_names_alternatives():
    @asset(io_manager_key="wandb_artifacts_manager")
    def gen():
        import threading

        return threading.Lock()

    with pytest.raises(SerializationError, match=r"serialization_module\.name"):
        _run([gen])


def test_artifact_not_found_lists_existing_names():
    @asset(io_manager_key="wandb_artifacts_manager")
    def present():
        return 1

    _run([present])

    @op(
        ins={
            "a": In(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"name": "absent"}},
            )
        }
    )
    def reader(a):
        return a

    @job(resource_defs=seed_resources())
    def j():
        reader()

    with pytest.raises(ArtifactNotFoundError, match=r"absent:latest.*\[present\]"):
        j.execute_in_process(run_config=SEED_RUN_CONFIG)


def test_both_config_spellings_accepted_and_conflict_detected():
    @asset(
        metadata={
            "wandb_artifact_configuration": {"type": "a"},
            "wandb_artifact_arguments": {"type": "b"},
        },
        io_manager_key="wandb_artifacts_manager",
    )
    def conflicting():
        return 1

    with pytest.raises(ConfigurationError, match="Keep only"):
        _run([conflicting])


def test_wandb_artifact_output_renamed_with_warning_and_metadata_augmented():
    @asset(name="right_name", io_manager_key="wandb_artifacts_manager")
    def art():
        a = wandb.Artifact("wrong_name", "dataset", metadata={"mine": 1})
        a.add(wandb.Table(columns=["x"], data=[[1]]), "t")
        return a

    result = _run([art])
    meta = asset_metadata(result, "right_name")
    assert meta["wandb_artifact_name"] == "right_name"
    w = _entry(meta)["metadata"]
    assert w["mine"] == 1 and w["source_integration"] == "dagster_wandb_io"


def test_wandb_image_output_round_trip():
    @asset(io_manager_key="wandb_artifacts_manager")
    def picture():
        return wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8), caption="zeros")

    seen = {}

    @asset(
        ins={
            "picture": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"get": "Image"}},
            )
        }
    )
    def read(picture):
        seen["img"] = picture

    assert _run([picture, read]).success
    assert seen["img"].image.size == (4, 4)


def test_get_of_unknown_object_and_get_path_of_unknown_file_explain():
    @asset(io_manager_key="wandb_artifacts_manager")
    def tab():
        return wandb.Table(columns=["x"], data=[[1]])

    @asset(
        ins={
            "tab": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"get": "nope"}},
            )
        }
    )
    def r1(tab):
        return None

    @asset(
        ins={
            "tab": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"get_path": "nope.bin"}},
            )
        }
    )
    def r2(tab):
        return None

    _run([tab])
    with pytest.raises(Exception, match="no W&B object named 'nope'"):
        _run([tab.to_source_asset(), r1])
    with pytest.raises(Exception, match=r"no file 'nope\.bin'.*Table\.table\.json"):
        _run([tab.to_source_asset(), r2])


def test_version_and_alias_together_rejected():
    @asset(io_manager_key="wandb_artifacts_manager")
    def v():
        return 1

    @asset(
        ins={
            "v": AssetIn(
                input_manager_key="wandb_artifacts_manager",
                metadata={"wandb_artifact_configuration": {"version": "v0", "alias": "latest"}},
            )
        }
    )
    def r(v):
        return None

    _run([v])
    with pytest.raises(ConfigurationError, match="Use only one"):
        _run([v.to_source_asset(), r])


def test_none_output_writes_nothing(base_dir):
    @asset(io_manager_key="wandb_artifacts_manager")
    def nothing():
        return None

    assert _run([nothing]).success
    assert not (base_dir / "dagster_wandb_io/cache").exists()
