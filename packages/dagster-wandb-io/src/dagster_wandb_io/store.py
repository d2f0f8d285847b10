"""One team's W&B artifacts through the shared cache, online or offline.

This layer knows nothing about Dagster contexts, so the multi-process tests and the benchmark
drive it directly; `io_manager.py` translates Dagster's contexts into these calls. Writing is
in `publish.py`, reading in `fetch.py`, and the cache entries both go through in `cache.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import fetch, keys, publish
from .cache import Layout, SharedCache
from .client import WandbCloudClient
from .config import Selection, WriteConfig
from .errors import ConfigurationError
from .fetch import ReadStats
from .index import OfflineIndex
from .naming import validate_path_component
from .publish import WriteResult
from .runs import RunSpec

Mode = Literal["online", "offline"]
Log = Callable[[str], None]


def _noop(_: str) -> None:
    pass


@dataclass(frozen=True)
class StoreSettings:
    base_dir: Path
    mode: Mode
    entity: str
    project: str
    host: str
    api_key: str | None = None
    ttl_minutes: int | None = None
    # A deployment setting (keys.ALLOW_UNSIGNED_ENV), never run config: see io_manager.py.
    allow_unsigned: bool = False

    def __post_init__(self) -> None:
        # Checked on every construction, dataclasses.replace() included (a read that names
        # another team's entity and project builds new settings).
        validate_path_component(self.entity, what="entity")
        validate_path_component(self.project, what="project")


class ArtifactStore:
    def __init__(
        self,
        settings: StoreSettings,
        client: WandbCloudClient | None = None,
    ) -> None:
        self.settings = settings
        self.layout = Layout(Path(settings.base_dir))
        self.cache = SharedCache(self.layout)
        self.index = OfflineIndex(self.layout)
        self._client = client
        self.stats = ReadStats()

    @functools.cached_property
    def trust(self) -> keys.TrustStore | None:
        """Every team's public key and entities; None only where unsigned pickles are allowed."""
        return keys.load_trust(required=not self.settings.allow_unsigned)

    def signer(self, *, required: bool) -> keys.Signer | None:
        """This team's signing identity, checked against the entity it writes to before anything
        is written; None only where the deployment allows unsigned pickles."""
        signer = keys.load_signer(
            self.trust, required=required and not self.settings.allow_unsigned
        )
        if signer is not None:
            assert self.trust is not None
            signer.check_may_publish(self.trust, self.settings.entity)
        return signer

    @property
    def offline(self) -> bool:
        return self.settings.mode == "offline"

    @property
    def client(self) -> WandbCloudClient:
        if self._client is None:
            raise ConfigurationError("No W&B client is configured for online mode.")
        return self._client

    def close(self) -> None:
        """Release entries held in use for paths and artifacts handed to user code."""
        self.cache.holds.release_all()

    def published_in_run(self, name: str, run: RunSpec) -> WriteResult | None:
        """The version of ``name`` this Dagster run already published, if any."""
        return publish.published_in_run(self, name, run)

    def write(
        self,
        obj: Any,
        *,
        name: str,
        config: WriteConfig,
        run: RunSpec,
        log: Log = _noop,
        extra_metadata: dict[str, Any] | None = None,
    ) -> WriteResult:
        return publish.write(
            self, obj, name=name, config=config, run=run, log=log, extra_metadata=extra_metadata
        )

    def read(
        self,
        name: str,
        selection: Selection,
        *,
        run: RunSpec | None = None,
        log: Log = _noop,
        entity: str | None = None,
        project: str | None = None,
    ) -> Any:
        """Read ``name``; ``entity``/``project`` name another team's, else this store's own."""
        return fetch.read(self, name, selection, run=run, log=log, entity=entity, project=project)
