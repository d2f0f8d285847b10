"""W&B Launch ops on wandb's public launch API (`wandb.sdk.launch`).

dagster-wandb called `launch.run`/`launch.create_and_run_agent` on the wrong objects (#24742).
Here the op talks to a small `LaunchClient`; `WandbLaunchClient` calls `launch_add`, `launch`
and `create_and_run_agent` as wandb 0.31 defines them, and tests pass a fake.
"""

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dagster import OpExecutionContext, op

from ..errors import ConfigurationError
from ..resources import WandbResource
from ..runs import scoped_env
from .configs import launch_agent_config, launch_config

_AGENT_DEFAULTS: dict[str, Any] = {
    "max_jobs": 1,
    "max_schedulers": 1,
    "queues": [],
    "registry": {},
    "builder": {},
    "verbosity": 0,
}


class LaunchClient(Protocol):
    def run_agent(self, config: dict[str, Any]) -> None: ...

    def enqueue(self, **kwargs: Any) -> Any:
        """`launch_add`: returns a queued run with `wait_until_finished()`."""

    def launch(self, **kwargs: Any) -> Any:
        """Run a job directly (no queue)."""


def _credentials(resource: WandbResource) -> AbstractContextManager[None]:
    # launch_add builds its own LaunchApi from the environment: hand it our key and host.
    return scoped_env(
        {"WANDB_API_KEY": resource.require_api_key(), "WANDB_BASE_URL": resource.host}
    )


class WandbLaunchClient:
    def __init__(self, resource: WandbResource) -> None:
        self.resource = resource

    def run_agent(self, config: dict[str, Any]) -> None:
        from wandb.sdk.launch import create_and_run_agent

        create_and_run_agent(api=self.resource.launch_api(), config=config)

    def enqueue(self, **kwargs: Any) -> Any:
        from wandb.sdk.launch import launch_add

        with _credentials(self.resource):
            return launch_add(**kwargs)

    def launch(self, **kwargs: Any) -> Any:
        from wandb.sdk.launch import launch

        return launch(api=self.resource.launch_api(), **kwargs)


def get_launch_client(resource: WandbResource) -> LaunchClient:
    factory = getattr(resource, "get_launch_client", None)
    if callable(factory):
        return factory()
    return WandbLaunchClient(resource)


def _entity_project(context: OpExecutionContext) -> tuple[str, str]:
    values: Mapping[str, Any] = getattr(context.resources, "wandb_config", None) or {}
    entity = values.get("entity") or os.environ.get("WANDB_ENTITY") or ""
    project = values.get("project") or os.environ.get("WANDB_PROJECT") or ""
    for key, value in (("entity", entity), ("project", project)):
        if value == "":
            raise ConfigurationError(
                f"The W&B {key} is empty. Set it in the `wandb_config` resource config"
                f" (resources.wandb_config.config.{key}) or via WANDB_{key.upper()}."
            )
    return entity, project


def _resource(context: OpExecutionContext) -> WandbResource:
    res = context.resources.wandb_resource
    if not isinstance(res, WandbResource):
        raise ConfigurationError(
            "`wandb_resource` must be dagster_wandb_io's `wandb_resource` or `WandbResource`."
        )
    return res


@op(
    required_resource_keys={"wandb_resource", "wandb_config"},
    config_schema=launch_agent_config(),
)
def run_launch_agent(context: OpExecutionContext) -> None:
    """Starts a W&B Launch agent polling `queues`; runs until stopped."""
    entity, project = _entity_project(context)
    config = {**_AGENT_DEFAULTS, "entity": entity, **context.op_config}
    context.log.info(f"Launch agent configuration (project {project}): {config}")
    get_launch_client(_resource(context)).run_agent(config)


def launch_add_kwargs(
    op_config: Mapping[str, Any], entity: str, project: str
) -> tuple[dict[str, Any], list[str]]:
    """Map the op config onto `wandb.sdk.launch.launch_add` keyword arguments."""
    cfg = dict(op_config)
    notes: list[str] = []
    cfg.pop("synchronous", None)
    if cfg.pop("cuda", None) is not None:
        notes.append("`cuda` is not supported by wandb>=0.30 launch and was ignored.")
    run_config = dict(cfg.pop("config", None) or {})
    parameters = cfg.pop("parameters", None)
    if parameters:
        overrides = dict(run_config.get("overrides") or {})
        overrides["run_config"] = {**dict(overrides.get("run_config") or {}), **parameters}
        run_config["overrides"] = overrides
    if cfg.get("uri") and not cfg.get("job") and not cfg.get("docker_image"):
        notes.append(
            "wandb>=0.30 launches jobs or images; `uri` is passed to launch_add but recent SDKs"
            " may ignore it. Prefer `job` (e.g. 'entity/project/job-name:latest')."
        )
    kwargs: dict[str, Any] = {
        "uri": cfg.get("uri"),
        "job": cfg.get("job"),
        "config": run_config or None,
        "template_variables": cfg.get("template_variables"),
        "project": project,
        "entity": entity,
        "queue_name": cfg.get("queue"),
        "resource": cfg.get("resource"),
        "entry_point": cfg.get("entry_point"),
        "name": cfg.get("name"),
        "version": cfg.get("version"),
        "docker_image": cfg.get("docker_image"),
        "resource_args": cfg.get("resource_args"),
        "run_id": cfg.get("run_id"),
        "priority": cfg.get("priority"),
    }
    return {k: v for k, v in kwargs.items() if v is not None}, notes


@op(
    required_resource_keys={"wandb_resource", "wandb_config"},
    config_schema=launch_config(),
)
def run_launch_job(context: OpExecutionContext) -> None:
    """Executes a W&B Launch job: enqueued on `queue`, or launched directly without one."""
    entity, project = _entity_project(context)
    kwargs, notes = launch_add_kwargs(context.op_config, entity, project)
    for note in notes:
        context.log.warning(note)
    client = get_launch_client(_resource(context))
    synchronous = context.op_config.get("synchronous", True)
    queue = context.op_config.get("queue")
    if queue is None:
        if not kwargs.get("job") and not kwargs.get("docker_image"):
            raise ConfigurationError(
                "Without a `queue`, wandb launches a `job` (or a `docker_image`) directly; a"
                " `uri` alone cannot be launched. Set `job`, or set `queue` to enqueue it for an"
                " agent."
            )
        direct = {
            k: v
            for k, v in kwargs.items()
            if k not in {"uri", "queue_name", "template_variables", "priority"}
        }
        context.log.info(f"No queue given: launching directly with {direct}")
        client.launch(synchronous=synchronous, **direct)
        return
    context.log.info(f"Enqueuing Launch job on queue {queue!r}: {kwargs}")
    queued = client.enqueue(**kwargs)
    if synchronous:
        context.log.info("Waiting for the launched run to finish...")
        queued.wait_until_finished()
