"""Config schemas of the launch ops (the seed's keys, plus what wandb 0.31 accepts)."""

from __future__ import annotations

from typing import Any

from dagster import Array, Bool, Field, Int, Noneable, Permissive, String


def launch_config() -> dict[str, Any]:
    return {
        "uri": Field(
            String, is_required=False, description="A W&B run URI or a Git repository URI."
        ),
        "job": Field(
            String,
            is_required=False,
            description="Job to launch, e.g. 'wandb/test/my-job:latest' (replaces 'uri').",
        ),
        "queue": Field(String, is_required=False, description="Queue to enqueue the run to."),
        "entry_point": Field(
            Array(String),
            is_required=False,
            description="Entry point, e.g. ['python', 'train.py'].",
        ),
        "version": Field(
            String, is_required=False, description="Git commit hash or branch for Git projects."
        ),
        "parameters": Field(
            Noneable(Permissive()),
            is_required=False,
            description="Run config overrides for the entry point (sent as overrides.run_config).",
        ),
        "name": Field(String, is_required=False, description="Name of the launched run."),
        "resource": Field(
            String, is_required=False, description="Execution resource, e.g. 'local-container'."
        ),
        "resource_args": Field(
            Noneable(Permissive()), is_required=False, description="Resource-specific arguments."
        ),
        "docker_image": Field(String, is_required=False, description="Docker image 'name:tag'."),
        "config": Field(
            Noneable(Permissive()), is_required=False, description="Launch config of the run."
        ),
        "template_variables": Field(
            Noneable(Permissive()), is_required=False, description="Queue template variables."
        ),
        "priority": Field(Int, is_required=False, description="Queue priority (1 = highest)."),
        "synchronous": Field(
            Bool,
            is_required=False,
            default_value=True,
            description="Wait for the run to finish. Defaults to True.",
        ),
        "cuda": Field(
            Bool,
            is_required=False,
            description="Ignored with wandb>=0.30 (kept so old configs still validate).",
        ),
        "run_id": Field(String, is_required=False, description="ID of the run to launch."),
    }


def launch_agent_config() -> dict[str, Any]:
    return {
        "queues": Field(Array(String), is_required=False, description="Queue names to poll."),
        "max_jobs": Field(
            Int,
            is_required=False,
            description="Max launch jobs run in parallel (default 1; -1 = no limit).",
        ),
    }
