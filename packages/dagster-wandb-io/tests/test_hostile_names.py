"""Entity, project, run id and artifact names that try to leave the shared cache are refused
before anything is written; names that only look valid (a trailing newline, '.', '..') too.

Before the fix, an entity of ``../../x`` made the writer put cache entries, the index, locks
and the offline run outside the base directory, and the name check (``^...$``) let ``abc\\n``
through.
"""

from pathlib import Path

import pytest
from dagster import asset, materialize

from dagster_wandb_io import ConfigurationError, WandbArtifactsIOManager, WandbResource
from dagster_wandb_io.naming import validate_artifact_name

HOSTILE = ["../../escape", "..", ".", "/tmp/escape", "a/../../escape", "ok\n", "ok\x00x"]


def files_outside(base_dir: Path) -> set[Path]:
    """Everything in the folder around the base directory, but not under it."""
    return {path for path in base_dir.parent.rglob("*") if base_dir not in (path, *path.parents)}


@asset(io_manager_key="io")
def model():
    return {"weights": [1, 2, 3]}


@pytest.mark.parametrize("field", ["entity", "project", "run_id"])
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_entity_project_or_run_id_writes_nothing_anywhere(base_dir, field, value):
    config = {"entity": "team_a", "project": "models", field: value}
    before = files_outside(base_dir)
    cache_before = set(base_dir.rglob("*"))

    with pytest.raises(ConfigurationError, match="may only contain letters"):
        materialize(
            [model],
            resources={"io": WandbArtifactsIOManager(wandb_resource=WandbResource(), **config)},
        )

    assert files_outside(base_dir) == before, "files were written outside the shared cache"
    assert not Path("/tmp/escape").exists()
    new_in_cache = {p for p in set(base_dir.rglob("*")) - cache_before if p.is_file()}
    assert not [p for p in new_in_cache if "escape" in str(p)]


def test_a_reader_naming_a_hostile_producer_entity_is_refused(base_dir):
    from dagster import AssetIn

    producer = {"wandb_artifact_configuration": {"entity": "../../escape", "project": "cakes"}}

    @asset(ins={"cakes": AssetIn(key="model", input_manager_key="io", metadata=producer)})
    def forecast(cakes):
        return cakes

    io = WandbArtifactsIOManager(wandb_resource=WandbResource(), entity="ml", project="p")
    with pytest.raises(ConfigurationError, match="Invalid W&B entity"):
        materialize([forecast, model.to_source_asset()], resources={"io": io}, selection=[forecast])


@pytest.mark.parametrize("name", [".", "..", "abc\n", "a/b", ""])
def test_artifact_names_are_matched_whole(name):
    with pytest.raises(ConfigurationError):
        validate_artifact_name(name)
