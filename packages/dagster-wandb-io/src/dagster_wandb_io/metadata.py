"""Metadata shown on the Dagster side for each written artifact."""

from __future__ import annotations

from typing import Any

from dagster import MetadataValue

from .publish import WriteResult


def output_metadata(result: WriteResult, dagster_run_id: str) -> dict[str, Any]:
    artifact_id = result.id or f"offline:{result.digest}"
    meta: dict[str, Any] = {
        "dagster_run_id": MetadataValue.dagster_run(dagster_run_id),
        "wandb_artifact_id": MetadataValue.text(artifact_id),
        "wandb_artifact_name": MetadataValue.text(result.name),
        "wandb_artifact_type": MetadataValue.text(result.type),
        "wandb_artifact_version": MetadataValue.text(result.version),
        "wandb_artifact_size": MetadataValue.int(result.size),
        "wandb_artifact_digest": MetadataValue.text(result.digest),
        "wandb_artifact_aliases": MetadataValue.text(", ".join(result.aliases)),
        "wandb_entity": MetadataValue.text(result.entity),
        "wandb_project": MetadataValue.text(result.project),
        "wandb_run_id": MetadataValue.text(result.run.id),
        "wandb_run_name": MetadataValue.text(result.run.name),
        "wandb_run_path": MetadataValue.text(result.run.path),
        "wandb_mode": MetadataValue.text("offline" if result.offline else "online"),
        "wandb_cache_path": MetadataValue.path(result.cache_path),
    }
    if result.url:
        meta["wandb_artifact_url"] = MetadataValue.url(result.url)
    if result.run.url:
        meta["wandb_run_url"] = MetadataValue.url(result.run.url)
    return meta
