"""Shared test helpers: seed-style resources, a materialization's metadata, and a pickle that
proves it was loaded. The fake W&B cloud and the stores over it are in dagster_wandb_io.testing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster_wandb_io.testing import ENTITY, PROJECT, FakeCloud

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult


def seed_resources(**io_config: Any) -> dict[str, Any]:
    from dagster import make_values_resource

    from dagster_wandb_io import wandb_artifacts_io_manager, wandb_resource

    manager = (
        wandb_artifacts_io_manager.configured(io_config)
        if io_config
        else wandb_artifacts_io_manager
    )
    return {
        "wandb_config": make_values_resource(entity=str, project=str),
        "wandb_resource": wandb_resource.configured({"api_key": {"env": "WANDB_API_KEY"}}),
        "io_manager": manager,
        "wandb_artifacts_manager": manager,
    }


SEED_RUN_CONFIG = {
    "resources": {"wandb_config": {"config": {"entity": ENTITY, "project": PROJECT}}}
}


CURRENT_FAKE: dict[str, FakeCloud] = {}


def unique() -> str:
    return uuid.uuid4().hex[:8]


def canary_fire(path: str) -> str:
    Path(path).write_text("unpickled")
    return "fired"


class Canary:
    """Unpickling it writes a marker file: proof that bytes were unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (canary_fire, (self.path,))


def asset_metadata(result: ExecuteInProcessResult, key: str | list[str]) -> dict[str, Any]:
    """The metadata of asset `key`'s materialization in `result`, each entry as its plain value."""
    from dagster import AssetKey

    materialization = next(
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == AssetKey(key)
    )
    return {
        name: getattr(value, "value", value) for name, value in materialization.metadata.items()
    }


# A cached file edited together with the hashes the cache checks it against.

CAKE_ROWS = [["sponge", 12]]
TAMPERED_ROWS = [["sponge", 99999]]


def cakes_table() -> Any:
    import wandb

    artifact = wandb.Artifact("cakes", "dataset")
    artifact.add(wandb.Table(columns=["cake", "count"], data=CAKE_ROWS), "rows")
    return artifact


def edit_file_and_its_hashes(entry_dir: Path, logical: str, content: bytes) -> None:
    """What any team's code can do to the shared cache volume: rewrite a cached file, then its
    size and xxh128 in entry.json and checks/ (the MD5, which the digest covers, stays)."""
    from dagster_wandb_io.cache import tree_xxh128_file

    path = entry_dir / "files" / logical
    path.chmod(0o644)
    path.write_bytes(content)
    manifest_path = entry_dir / "entry.json"
    manifest = json.loads(manifest_path.read_text())
    xxh128 = tree_xxh128_file(path)
    manifest["files"][logical].update(size=len(content), xxh128=xxh128)
    manifest_path.write_text(json.dumps(manifest))
    for check in (entry_dir / "checks").glob("*.json"):
        check.write_text(json.dumps({**json.loads(check.read_text()), "xxh128": xxh128}))


def tampered_table_json(entry_dir: Path) -> bytes:
    table = json.loads((entry_dir / "files" / "rows.table.json").read_text())
    return json.dumps({**table, "data": TAMPERED_ROWS}).encode()
