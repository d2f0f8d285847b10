"""The audit log: every mutation asked for in the UI or its API, allowed or refused, with who
asked, their role and teams, the code locations it touched and the outcome.

Each entry is a JSON line on the webserver's log (where a log shipper finds it) and a row of
``ui_audit.mutations`` in the instance's Postgres, which admins read through the webserver
(``GET /ui-audit``, `make audit`). The schema belongs to the platform's login; no team's role
may read or write it (the owner's default grants to teams are revoked from it), so a team can
neither read who did what nor erase its traces.
"""

import datetime
import json
import logging
import os
import threading
from typing import Any

from dagster_team_celery.deploy.daemon_health import connection_from_environment

logger = logging.getLogger("dagster.ui_audit")

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS ui_audit;
CREATE TABLE IF NOT EXISTS ui_audit.mutations (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    entry jsonb NOT NULL
);
REVOKE ALL ON SCHEMA ui_audit FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA ui_audit FROM PUBLIC;
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'dagster_teams') THEN
    REVOKE ALL ON SCHEMA ui_audit FROM dagster_teams;
    REVOKE ALL ON ALL TABLES IN SCHEMA ui_audit FROM dagster_teams;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA ui_audit FROM dagster_teams;
  END IF;
END $$;
"""


def postgres_from_environment() -> dict[str, str] | None:
    """The instance database as dagster.yaml names it (DAGSTER_POSTGRES_*); None if unset."""
    names = ("HOST", "PORT", "USER", "PASSWORD", "DB")
    if not all(f"DAGSTER_POSTGRES_{name}" in os.environ for name in names):
        return None
    return connection_from_environment()


class AuditLog:
    """One connection, kept between mutations (a new one costs more than the insert) and made
    again when Postgres has dropped it (a restart)."""

    def __init__(self, postgres: dict[str, str] | None) -> None:
        self.postgres = postgres
        self._connection = None
        self._lock = threading.Lock()

    def _execute(self, sql: str, parameters: tuple = (), fetch: bool = False) -> list:
        import psycopg2

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._connection is None or self._connection.closed:
                        self._connection = psycopg2.connect(connect_timeout=5, **self.postgres)
                        self._connection.autocommit = True
                        with self._connection.cursor() as cursor:
                            cursor.execute(SCHEMA_SQL)
                    with self._connection.cursor() as cursor:
                        cursor.execute(sql, parameters)
                        return cursor.fetchall() if fetch else []
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    self._connection = None
                    if attempt == 2:
                        raise
        return []

    def record(self, entry: dict[str, Any]) -> None:
        entry = {"at": datetime.datetime.now(datetime.UTC).isoformat(), **entry}
        line = json.dumps(entry, sort_keys=True)
        logger.info(line)
        if self.postgres is None:
            return
        try:
            self._execute("INSERT INTO ui_audit.mutations (entry) VALUES (%s)", (line,))
        except Exception:
            # The change itself is not undone by a lost record; the log line above still has it.
            logger.exception("could not store the audit entry above in Postgres")

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        if self.postgres is None:
            return []
        query = "SELECT entry FROM ui_audit.mutations ORDER BY id DESC LIMIT %s"
        return [row[0] for row in self._execute(query, (limit,), fetch=True)]
