"""Dagster <-> W&B artifacts: the seed integration's API, offline mode, a cache shared by
many processes, and signed pickles.

`__all__` is the public API: no other module declares one, and only its names are exported.
They are imported lazily, so that processes that only use the cache layer (CLI, eviction,
workers) do not pay for importing dagster and wandb; `_EXPORTS` says where each one lives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

_EXPORTS: dict[str, str] = {
    "ArtifactNotFoundError": "errors",
    "CacheCorruptionError": "errors",
    "ConfigurationError": "errors",
    "MissingApiKeyError": "errors",
    "SerializationError": "errors",
    "SignatureError": "errors",
    "WandbArtifactsIOManagerError": "errors",
    "LoggedArtifact": "wandb_client",
    "RemoteArtifact": "wandb_client",
    "RemoteFile": "wandb_client",
    "WandbCloudClient": "wandb_client",
    "WandbSdkClient": "wandb_client",
    "SerializationModule": "config",
    "WandbArtifactConfiguration": "config",
    "evict": "eviction",
    "make_cache_eviction_job": "eviction",
    "make_cache_eviction_schedule": "eviction",
    "WandbArtifactsIOManager": "io_manager",
    "wandb_artifacts_io_manager": "io_manager",
    "LoadedArtifact": "local_artifact",
    "WandbResource": "resources",
    "wandb_resource": "resources",
}

__all__ = [
    "ArtifactNotFoundError",
    "CacheCorruptionError",
    "ConfigurationError",
    "LoadedArtifact",
    "LoggedArtifact",
    "MissingApiKeyError",
    "RemoteArtifact",
    "RemoteFile",
    "SerializationError",
    "SerializationModule",
    "SignatureError",
    "WandbArtifactConfiguration",
    "WandbArtifactsIOManager",
    "WandbArtifactsIOManagerError",
    "WandbCloudClient",
    "WandbResource",
    "WandbSdkClient",
    "__version__",
    "evict",
    "make_cache_eviction_job",
    "make_cache_eviction_schedule",
    "wandb_artifacts_io_manager",
    "wandb_resource",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'dagster_wandb_io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .config import SerializationModule, WandbArtifactConfiguration
    from .errors import (
        ArtifactNotFoundError,
        CacheCorruptionError,
        ConfigurationError,
        MissingApiKeyError,
        SerializationError,
        SignatureError,
        WandbArtifactsIOManagerError,
    )
    from .eviction import evict, make_cache_eviction_job, make_cache_eviction_schedule
    from .io_manager import WandbArtifactsIOManager, wandb_artifacts_io_manager
    from .local_artifact import LoadedArtifact
    from .resources import WandbResource, wandb_resource
    from .wandb_client import (
        LoggedArtifact,
        RemoteArtifact,
        RemoteFile,
        WandbCloudClient,
        WandbSdkClient,
    )
