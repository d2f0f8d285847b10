"""A store's settings and the places its artifacts live, as the write and read paths see them.

`store.ArtifactStore` builds one `Backends` and hands it to `publish` and `fetch`, so those two
depend on this module rather than on the store that calls them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import keys, runs
from .artifact_objects import STORE_URL_ENV, ObjectStore
from .cache import SharedCache
from .errors import ConfigurationError
from .index import IndexedVersion, OfflineIndex
from .index_postgres import INDEX_URL_ENV, PostgresIndex
from .naming import validate_path_component
from .runs import RunSpec
from .wandb_client import ArtifactVersion, WandbCloudClient

Mode = Literal["online", "offline"]
Log = Callable[[str], None]


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


@dataclass(frozen=True, eq=False)
class Backends:
    """The cache, the offline index, the object store and W&B, with the keys that sign for
    them. Frozen: the write and read paths use these, never swap them."""

    settings: StoreSettings
    cache: SharedCache
    index: OfflineIndex
    objects: ObjectStore | None = None
    wandb_client: WandbCloudClient | None = None

    @functools.cached_property
    def trust(self) -> keys.TrustStore | None:
        """Every team's public key and entities; None only where unsigned pickles are allowed."""
        # Loaded on first use, not at construction: an online read of a plain file never
        # needs the trust file, and must not fail for want of one.
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
        if self.wandb_client is None:
            raise ConfigurationError("No W&B client is configured for online mode.")
        return self.wandb_client

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
            with runs.run_lock(self.cache.layout, run, timeout):
                yield


def indexed_version(
    s: StoreSettings, name: str, indexed: IndexedVersion, url: str | None = None
) -> ArtifactVersion:
    """An offline index row as the version a read resolves to or a write reports."""
    return ArtifactVersion(
        entity=s.entity,
        project=s.project,
        name=name,
        version=indexed.version,
        digest=indexed.digest,
        type=indexed.type,
        id=None,
        size=indexed.size,
        url=url,
        aliases=list(indexed.aliases),
    )
