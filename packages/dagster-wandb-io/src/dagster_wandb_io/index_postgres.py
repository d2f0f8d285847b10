"""Where the offline index lives when several hosts share it: Postgres, one row per artifact.

The row holds the same signed document the file index holds (index.py verifies and signs it),
in the schema ``wandb_io`` of the database DAGSTER_WANDB_IO_INDEX_URL names (the platform uses
its Dagster instance's database). An update is one transaction that holds the row's lock
(`SELECT ... FOR UPDATE`) from reading the document to writing the new one, so moving an alias,
adding a version and claiming "published once per run and name" are each atomic across every
process on every host: what the file index's `flock` did on one host.

``next_version`` lives beside the document, outside it, so a document set aside as untrusted
never lets a version name be reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, OfflineIndexError
from .index_files import check_document

INDEX_URL_ENV = "DAGSTER_WANDB_IO_INDEX_URL"
# How long an update waits for a row another transaction holds, and any statement may run: a
# process that holds a row or a stalled database fails a step with an error instead of hanging it.
LOCK_TIMEOUT_ENV = "DAGSTER_WANDB_IO_INDEX_LOCK_TIMEOUT_SECONDS"
DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
STATEMENT_TIMEOUT_SECONDS = 120.0
SCHEMA = "wandb_io"
_SCHEMA_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.alias_maps (
    entity text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    document jsonb,
    next_version integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, project, name)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.untrusted_alias_maps (
    id bigserial PRIMARY KEY,
    entity text NOT NULL,
    project text NOT NULL,
    name text NOT NULL,
    document jsonb,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);
"""
_TABLES_PRESENT_SQL = (
    f"SELECT to_regclass('{SCHEMA}.alias_maps') IS NOT NULL"
    f" AND to_regclass('{SCHEMA}.untrusted_alias_maps') IS NOT NULL"
)


def lock_timeout_seconds() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOCK_TIMEOUT_SECONDS
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigurationError(f"{LOCK_TIMEOUT_ENV}={raw!r}: give a positive number of seconds.")
    return value


def _timeouts() -> str:
    """The index connection's server-side bounds, as libpq options."""
    lock_ms = int(lock_timeout_seconds() * 1000)
    statement_ms = int(max(STATEMENT_TIMEOUT_SECONDS, lock_timeout_seconds()) * 1000)
    return f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}"


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.username or ''}@{host}{port}{parts.path}"


class PostgresIndexSlot:
    """One artifact's row, locked (FOR UPDATE) until the transaction ends."""

    def __init__(self, cursor: Any, key: tuple[str, str, str]) -> None:
        self.cursor = cursor
        self.key = key
        cursor.execute(
            f"INSERT INTO {SCHEMA}.alias_maps (entity, project, name) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            key,
        )
        cursor.execute(
            f"SELECT document, next_version FROM {SCHEMA}.alias_maps"
            " WHERE entity = %s AND project = %s AND name = %s FOR UPDATE",
            key,
        )
        self.document, self.next_version = cursor.fetchone()

    def load(self) -> dict[str, Any] | None:
        if self.document is None:
            return None
        where = "/".join(self.key) + " (Postgres)"
        return check_document(self.document, where)

    def save(self, document: dict[str, Any]) -> None:
        # Saved as signed; the floor only ever grows.
        numbered = int(document.get("next_version", len(document["versions"])))
        next_version = max(numbered, self.next_version)
        self.cursor.execute(
            f"UPDATE {SCHEMA}.alias_maps SET document = %s, next_version = %s, updated_at = now()"
            " WHERE entity = %s AND project = %s AND name = %s",
            (json.dumps(document), next_version, *self.key),
        )
        self.document, self.next_version = document, next_version

    def set_aside(self) -> tuple[str, int]:
        self.cursor.execute(
            f"INSERT INTO {SCHEMA}.untrusted_alias_maps (entity, project, name, document)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (*self.key, json.dumps(self.document)),
        )
        (aside_id,) = self.cursor.fetchone()
        self.cursor.execute(
            f"UPDATE {SCHEMA}.alias_maps SET document = NULL"
            " WHERE entity = %s AND project = %s AND name = %s",
            self.key,
        )
        versions = (self.document or {}).get("versions")
        counted = len(versions) if isinstance(versions, list) else 0
        self.document = None
        return f"{SCHEMA}.untrusted_alias_maps id {aside_id}", max(self.next_version, counted)


class PostgresIndex:
    """The index in Postgres; one connection per process (a fork opens its own)."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError(
                f"{INDEX_URL_ENV} must be a postgresql:// URL (postgresql://user:password@host:"
                f"port/database), not {redacted(url)!r}."
            )
        self.url = url
        self._lock = threading.Lock()
        self._connection: Any = None
        self._pid = 0
        self._schema_ready = False

    def where(self, entity: str, project: str, name: str) -> str:
        return f"{entity}/{project}/{name} (Postgres {redacted(self.url)}, {SCHEMA}.alias_maps)"

    def _connect(self) -> Any:
        if (
            self._connection is not None
            and self._pid == os.getpid()
            and not self._connection.closed
        ):
            return self._connection
        try:
            import psycopg2
        except ImportError:
            raise ConfigurationError(
                f"{INDEX_URL_ENV} is set but psycopg2 is not installed: install"
                " dagster-wandb-io[object-store]."
            ) from None
        try:
            connection = psycopg2.connect(self.url, connect_timeout=10, options=_timeouts())
        except psycopg2.OperationalError as error:
            raise ConfigurationError(
                f"The offline index's Postgres ({redacted(self.url)}) is unreachable or refused"
                f" the login: {str(error).strip()}. Check {INDEX_URL_ENV}."
            ) from None
        self._connection, self._pid = connection, os.getpid()
        if not self._schema_ready:
            with connection, connection.cursor() as cursor:
                # Checked first: a team's role may not create anything (the platform's `init`
                # creates the schema), and CREATE ... IF NOT EXISTS still needs the right to.
                cursor.execute(_TABLES_PRESENT_SQL)
                if not cursor.fetchone()[0]:
                    self._create_schema(cursor)
            self._schema_ready = True
        return connection

    def _create_schema(self, cursor: Any) -> None:
        import psycopg2

        try:
            # Two processes creating it at once would collide on its catalog rows.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('dagster_wandb_io.schema'))")
            cursor.execute(_SCHEMA_SQL)
        except psycopg2.errors.InsufficientPrivilege:
            self._connection = None
            raise ConfigurationError(
                f"The offline index's tables ({SCHEMA}.alias_maps) do not exist in"
                f" {redacted(self.url)}, and this login may not create them: a team's Postgres"
                " role may not. The platform's init creates them (`dagster-wandb-io store"
                " migrate`, as the database's owner); run it, then retry."
            ) from None

    def ensure_schema(self) -> None:
        """Create the index's tables now, as whoever this login is (init: the owner)."""
        with self._lock:
            self._connect()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        import psycopg2

        with self._lock:
            connection = None
            for attempt in range(2):
                try:
                    connection = self._connect()
                    with connection.cursor() as ping:
                        ping.execute("SELECT 1")
                    break
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    # A connection the server dropped (a Postgres restart): once more, fresh.
                    self._connection = None
                    if attempt == 1:
                        raise
            assert connection is not None
            try:
                with connection, connection.cursor() as cursor:
                    yield cursor
            except (psycopg2.errors.LockNotAvailable, psycopg2.errors.QueryCanceled) as error:
                raise OfflineIndexError(
                    f"The offline index in Postgres ({redacted(self.url)}) did not answer in time"
                    f" ({str(error).strip()}): another transaction held the artifact's row for"
                    f" over {lock_timeout_seconds():.0f}s ({LOCK_TIMEOUT_ENV}), or a statement ran"
                    f" over {STATEMENT_TIMEOUT_SECONDS:.0f}s. Nothing was changed. If a process is"
                    " stuck holding the row (pg_stat_activity), end it, then retry."
                ) from None
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self._connection = None
                raise

    def load(self, entity: str, project: str, name: str) -> dict[str, Any] | None:
        with self._transaction() as cursor:
            cursor.execute(
                f"SELECT document FROM {SCHEMA}.alias_maps"
                " WHERE entity = %s AND project = %s AND name = %s",
                (entity, project, name),
            )
            row = cursor.fetchone()
        if row is None or row[0] is None:
            return None
        return check_document(row[0], f"{entity}/{project}/{name} (Postgres)")

    @contextlib.contextmanager
    def updating(self, entity: str, project: str, name: str) -> Iterator[PostgresIndexSlot]:
        with self._transaction() as cursor:
            yield PostgresIndexSlot(cursor, (entity, project, name))

    @contextlib.contextmanager
    def exclusive(self, key: str, timeout: float) -> Iterator[None]:
        """Hold a lock named `key` across every host: a session advisory lock, on a connection
        of its own, released when the block ends or the connection dies with its process."""
        import psycopg2

        # Advisory locks take a 64-bit key.
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        connection = psycopg2.connect(self.url, connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = %s", (f"{int(timeout * 1000)}ms",))
                try:
                    cursor.execute("SELECT pg_advisory_lock(%s)", (number,))
                except psycopg2.errors.LockNotAvailable:
                    raise TimeoutError(
                        f"Timed out after {timeout:.0f}s waiting for {key}, held by another"
                        " process on some host. If that process is stuck, end it; a process that"
                        " died released it with its connection."
                    ) from None
            yield
        finally:
            connection.close()

    def names(self, entity: str, project: str) -> list[str]:
        with self._transaction() as cursor:
            cursor.execute(
                f"SELECT name FROM {SCHEMA}.alias_maps WHERE entity = %s AND project = %s"
                " AND document IS NOT NULL ORDER BY name",
                (entity, project),
            )
            return [row[0] for row in cursor.fetchall()]

    def close(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None
