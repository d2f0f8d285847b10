"""Shared test helpers: seed-style resources, a materialization's metadata, and a pickle that
proves it was loaded. The fake W&B cloud and the stores over it are in dagster_wandb_io.testing."""

from __future__ import annotations

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
