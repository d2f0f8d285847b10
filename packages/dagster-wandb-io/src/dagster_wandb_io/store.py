"""One team's W&B artifacts through the shared cache, online or offline.

This layer knows nothing about Dagster contexts, so the multi-process tests and the benchmark
drive it directly; `io_manager.py` translates Dagster's contexts into these calls. Writing is
in `publish.py`, reading in `fetch.py`, and the cache entries both go through in `cache.py`.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from . import fetch, keys, publish
from .artifact_objects import STORE_URL_ENV, ObjectStore
from .backends import Backends, Log, StoreSettings
from .cache import Layout, SharedCache
from .config import Selection, WriteConfig
from .fetch import ReadStats
from .index import OfflineIndex
from .index_postgres import INDEX_URL_ENV, PostgresIndex
from .publish import WriteResult
from .runs import RunSpec
from .wandb_client import WandbCloudClient


def _noop(_: str) -> None:
    pass


def shared_storage_from_environment() -> dict[str, str | None]:
    """StoreSettings' store_url and index_url, as the deployment sets them."""
    return {
        "store_url": os.environ.get(STORE_URL_ENV, "").strip() or None,
        "index_url": os.environ.get(INDEX_URL_ENV, "").strip() or None,
    }


# One connection per process and database, whichever stores use it.
_postgres_indexes: dict[str, PostgresIndex] = {}


def postgres_index(url: str) -> PostgresIndex:
    if url not in _postgres_indexes:
        _postgres_indexes[url] = PostgresIndex(url)
    return _postgres_indexes[url]


class ArtifactStore:
    def __init__(
        self,
        settings: StoreSettings,
        client: WandbCloudClient | None = None,
    ) -> None:
        self.settings = settings
        self.layout = Layout(Path(settings.base_dir))
        self.cache = SharedCache(self.layout)
        self.objects = ObjectStore(settings.store_url) if settings.store_url else None
        backend = postgres_index(settings.index_url) if settings.index_url else None
        self.index = OfflineIndex(self.layout, backend)
        # What the write and read paths use: they get these, not the store.
        self.backends = Backends(settings, self.cache, self.index, self.objects, client)
        self.stats = ReadStats()

    @property
    def trust(self) -> keys.TrustStore | None:
        """Every team's public key and entities; None only where unsigned pickles are allowed."""
        return self.backends.trust

    def signer(self, *, required: bool) -> keys.Signer | None:
        """This team's signing identity; None only where the deployment allows unsigned
        pickles."""
        return self.backends.signer(required=required)

    @property
    def offline(self) -> bool:
        return self.backends.offline

    @property
    def client(self) -> WandbCloudClient:
        return self.backends.client

    def run_lock(self, run: RunSpec, timeout: float = 3600) -> AbstractContextManager[None]:
        """One process at a time uses a W&B run (see `Backends.run_lock`)."""
        return self.backends.run_lock(run, timeout)

    def close(self) -> None:
        """Release entries held in use for paths and artifacts handed to user code."""
        self.cache.holds.release_all()

    def published_in_run(self, name: str, run: RunSpec) -> WriteResult | None:
        """The version of ``name`` this Dagster run already published, if any."""
        return publish.published_in_run(self.backends, name, run)

    def write(
        self,
        obj: Any,
        *,
        name: str,
        config: WriteConfig,
        run: RunSpec,
        log: Log = _noop,
        extra_metadata: dict[str, Any] | None = None,
        once_per_run: bool = False,
    ) -> WriteResult:
        return publish.write(
            self.backends,
            obj,
            name=name,
            config=config,
            run=run,
            log=log,
            extra_metadata=extra_metadata,
            once_per_run=once_per_run,
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
        return fetch.read(
            self.backends,
            self.stats,
            name,
            selection,
            run=run,
            log=log,
            entity=entity,
            project=project,
        )
