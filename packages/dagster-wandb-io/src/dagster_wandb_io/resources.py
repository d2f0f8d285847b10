"""The W&B resource: credentials, host, mode and default entity/project."""

from __future__ import annotations

import os
from typing import Any

from dagster import (
    ConfigurableResource,
    Field,
    InitResourceContext,
    Noneable,
    String,
    StringSource,
    resource,
)
from pydantic import Field as PydanticField

from .cache import Layout
from .errors import ConfigurationError, MissingApiKeyError
from .wandb_client import WANDB_CLOUD_HOST, WandbCloudClient, WandbSdkClient

MODE_ENV = "WANDB_MODE"
_OFFLINE_MODES = {"offline", "dryrun"}
_ONLINE_MODES = {"online", "run"}


def normalize_mode(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v in _OFFLINE_MODES:
        return "offline"
    if v in _ONLINE_MODES:
        return "online"
    raise ConfigurationError(
        f"Unsupported W&B mode {value!r}. Use 'online' or 'offline' (in the resource/IO"
        f" manager config `mode`, or the {MODE_ENV} environment variable)."
    )


class WandbResource(ConfigurableResource):
    """Communicates with W&B. Online it authenticates with `api_key` (or WANDB_API_KEY);
    offline (`mode: offline` or WANDB_MODE=offline) it needs no network and no key."""

    api_key: str | None = PydanticField(
        default=None,
        description="W&B API key. Defaults to the WANDB_API_KEY environment variable.",
    )
    host: str = PydanticField(
        default=WANDB_CLOUD_HOST,
        description="W&B API host. Only needed for W&B Server.",
    )
    mode: str | None = PydanticField(
        default=None,
        description="'online' or 'offline'. Defaults to WANDB_MODE, then 'online'.",
    )
    entity: str | None = PydanticField(
        default=None, description="Default W&B entity (else WANDB_ENTITY)."
    )
    project: str | None = PydanticField(
        default=None, description="Default W&B project (else WANDB_PROJECT)."
    )

    def resolved_mode(self) -> str:
        return normalize_mode(self.mode) or normalize_mode(os.environ.get(MODE_ENV)) or "online"

    def resolved_api_key(self) -> str | None:
        return self.api_key or os.environ.get("WANDB_API_KEY") or None

    def require_api_key(self) -> str:
        key = self.resolved_api_key()
        if not key:
            raise MissingApiKeyError(
                "W&B online mode needs an API key and none is configured. Set WANDB_API_KEY"
                " (e.g. `wandb_resource.configured({'api_key': {'env': 'WANDB_API_KEY'}})`),"
                " or run offline with WANDB_MODE=offline (or `mode: offline`) and upload later"
                " with `wandb sync`."
            )
        return key

    def get_client(self, layout: Layout) -> WandbCloudClient:
        """The cloud client used in online mode (tests substitute a fake by overriding this)."""
        return WandbSdkClient(api_key=self.require_api_key(), host=self.host, layout=layout)

    def get_api(self) -> Any:
        import wandb

        return wandb.Api(api_key=self.require_api_key(), overrides={"base_url": self.host})

    def launch_api(self) -> Any:
        """wandb's launch API client (public `wandb.sdk.launch.api.LaunchApi`)."""
        from wandb.sdk.launch.api import LaunchApi

        return LaunchApi(api_key=self.require_api_key(), overrides={"base_url": self.host})

    def __getitem__(self, key: str) -> Any:
        # dagster-wandb's resource was a dict {"sdk", "api", "host"}; keep that access working.
        if key == "sdk":
            import wandb

            return wandb
        if key == "api":
            return self.get_api()
        if key == "host":
            return self.host
        raise KeyError(key)


@resource(
    config_schema={
        "api_key": Field(
            Noneable(StringSource),
            is_required=False,
            default_value=None,
            description="W&B API key (required online). Usually {'env': 'WANDB_API_KEY'}.",
        ),
        "host": Field(
            String,
            is_required=False,
            default_value=WANDB_CLOUD_HOST,
            description="API host server. Only required if you are using W&B Server.",
        ),
        "mode": Field(
            Noneable(String),
            is_required=False,
            default_value=None,
            description="'online' or 'offline'. Defaults to WANDB_MODE, then 'online'.",
        ),
    },
    description="Resource for interacting with Weights & Biases",
)
def wandb_resource(context: InitResourceContext) -> WandbResource:
    """Dagster resource used to communicate with the W&B API (seed-compatible wrapper).

    Example::

        my_wandb_resource = wandb_resource.configured({"api_key": {"env": "WANDB_API_KEY"}})
    """
    cfg = context.resource_config or {}
    return WandbResource(api_key=cfg.get("api_key"), host=cfg["host"], mode=cfg.get("mode"))
