"""One team's W&B artifacts through the shared cache, online or offline.

This layer knows nothing about Dagster contexts, so the multi-process tests and the benchmark
drive it directly; `io_manager.py` translates Dagster's contexts into these calls. Writing is
in `publish.py`, reading in `fetch.py`, and the cache entries both go through in `cache.py`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import fetch, keys, publish, runs
from .cache import Layout, SharedCache
from .client import WandbCloudClient
from .config import Selection, WriteConfig
from .errors import ConfigurationError
from .fetch import ReadStats
from .index import OfflineIndex
from .index_postgres import INDEX_URL_ENV, PostgresIndex
from .naming import validate_path_component
from .object_store import STORE_URL_ENV, ObjectStore
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
    # Deployment settings too, from the environment (from_environment): the offline store of
    # record (s3://bucket/prefix) and the Postgres that holds the index every host shares.
    store_url: str | None = None
    index_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Checked on every construction, dataclasses.replace() included (a read that names
        # another team's entity and project builds new settings).
        validate_path_component(self.entity, what="entity")
        validate_path_component(self.project, what="project")
        if self.store_url and not self.index_url:
            raise ConfigurationError(
                f"{STORE_URL_ENV} is set but {INDEX_URL_ENV} is not. Hosts that share the object"
                " store must share the index too (a file index on one host's volume would"
                f" disagree with another's): set {INDEX_URL_ENV} to a postgresql:// URL, or"
                f" unset {STORE_URL_ENV} to keep everything on this host's volume."
            )


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

    @contextlib.contextmanager
    def run_lock(self, run: RunSpec, timeout: float = 3600) -> Iterator[None]:
        """One process at a time uses a W&B run: on this host, a file lock on the cache
        volume; with a shared index, a Postgres advisory lock that every host honours."""
        backend = self.index.backend
        if isinstance(backend, PostgresIndex):
            with backend.exclusive(
                f"dagster-wandb-io run {run.entity}/{run.project}/{run.run_id}", timeout
            ):
                yield
        else:
            with runs.run_lock(self.layout, run, timeout):
                yield

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
        once_per_run: bool = False,
    ) -> WriteResult:
        return publish.write(
            self,
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
        return fetch.read(self, name, selection, run=run, log=log, entity=entity, project=project)
