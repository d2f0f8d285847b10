"""The Postgres roles teams connect as, as one idempotent SQL script the owner applies.

The instance's tables (Dagster's in ``public``, the W&B index's in ``wandb_io``) belong to the
owner, the login the platform's own services use (POSTGRES_USER). Each team's code server,
workers and runs connect as the team's own role, ``team_<name>``, which may read and write rows
(Dagster writes runs, events and concurrency claims from team processes) and nothing more: it is
no superuser, so no ``COPY ... TO PROGRAM`` (a shell in the database's container), no
``pg_read_server_files``, no other database and no role of another team; it owns nothing, so
it can drop, alter or truncate no table; it may create nothing in any schema. Its sessions are
bounded (``statement_timeout``, ``lock_timeout``, idle transactions) and so is its number of
connections, so one team can neither hang another's queries on its locks for ever nor take
every connection the server has.

In the W&B index, row-level security lets a team write only the alias maps of the entities it
owns (index_rows_sql). What a team's role can still do is in the README's threat model: Dagster
keeps every team's runs and events in the same tables, so it can read and write rows of another
team's runs.

Passwords are given as SCRAM-SHA-256 verifiers (what ``CREATE ROLE ... PASSWORD`` stores), so
the script holds no secret, like the Redis ACL file.
"""

import base64
import hashlib
import hmac
import os
import re

from dagster_team_celery.deploy.redis_acl import check_team_name, team_user

# Granted to every team role, and what the owner's future tables are granted to: a table a
# later Dagster migration adds is reachable by every team with no new grant.
TEAMS_GROUP = "dagster_teams"
SCHEMAS = ("public", "wandb_io")
INDEX_TABLES = ("alias_maps", "untrusted_alias_maps")
SCRAM_ITERATIONS = 4096  # Postgres' own default (scram_iterations)
# Per team role. A step's statement that runs longer than this is cancelled; Dagster's own
# queries take milliseconds, and the W&B index bounds its own (index_postgres.py).
STATEMENT_TIMEOUT = "300s"
LOCK_TIMEOUT = "120s"
IDLE_IN_TRANSACTION_TIMEOUT = "300s"
CONNECTION_LIMIT_ENV = "POSTGRES_TEAM_CONNECTION_LIMIT"
DEFAULT_CONNECTION_LIMIT = 60
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for ``password`` (RFC 5802, RFC 7677)."""
    if not password:
        raise ValueError("a team's Postgres password must not be empty: run `make env`")
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def stable_salt(team: str, password: str) -> bytes:
    """A salt that changes only with the password, so `make env` rewrites the same script
    (and Swarm, whose configs are named by content, re-runs nothing) until a password changes.
    Known only to who knows the password, it costs a guesser as much as a random one."""
    return hashlib.sha256(f"mlplatform-postgres:{team}:{password}".encode()).digest()[:16]


def check_identifier(name: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a plain Postgres identifier ({IDENTIFIER.pattern}): the"
            " roles script names it unquoted. Choose a lower-case name in .env."
        )
    return name


def connection_limit(environ: dict[str, str] | None = None) -> int:
    raw = (os.environ if environ is None else environ).get(CONNECTION_LIMIT_ENV) or ""
    if not raw:
        return DEFAULT_CONNECTION_LIMIT
    if not raw.isdigit() or int(raw) < 5:
        raise ValueError(
            f"{CONNECTION_LIMIT_ENV}={raw!r}: give a whole number of connections, at least 5"
            f" (a team's code server, workers and runs each hold some); default"
            f" {DEFAULT_CONNECTION_LIMIT}."
        )
    return int(raw)


def team_role_sql(team: str, verifier: str, limit: int) -> str:
    role = team_user(team)
    options = (
        f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
        f" CONNECTION LIMIT {limit} PASSWORD '{verifier}'"
    )
    return f"""
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
    ALTER ROLE {role} WITH {options};
  ELSE
    CREATE ROLE {role} WITH {options};
  END IF;
END $$;
GRANT {TEAMS_GROUP} TO {role};
ALTER ROLE {role} SET statement_timeout = '{STATEMENT_TIMEOUT}';
ALTER ROLE {role} SET lock_timeout = '{LOCK_TIMEOUT}';
ALTER ROLE {role} SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}';
"""


def grants_sql(owner: str, database: str) -> str:
    """Rows of the owner's tables, in both schemas, now and for tables migrations add later."""
    lines = [
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;",
        f"GRANT CONNECT ON DATABASE {database} TO {TEAMS_GROUP};",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT USAGE ON SCHEMAS TO {TEAMS_GROUP};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner}"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {TEAMS_GROUP};",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner}"
        # nextval only: setval would let a team push another team's ids into collisions.
        f" GRANT USAGE ON SEQUENCES TO {TEAMS_GROUP};",
    ]
    for schema in SCHEMAS:
        # The W&B index's schema exists once `dagster-wandb-io store migrate` ran.
        lines.append(f"""DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_namespace WHERE nspname = '{schema}') THEN
    GRANT USAGE ON SCHEMA {schema} TO {TEAMS_GROUP};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {TEAMS_GROUP};
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {TEAMS_GROUP};
  END IF;
END $$;""")
    return "\n".join(lines) + "\n"


def drop_removed_sql(teams: list[str]) -> str:
    """Team roles no longer registered lose their login (and the group); their rows stay."""
    kept = ", ".join(f"'{team_user(team)}'" for team in teams) or "''"
    return f"""
DO $$ DECLARE removed text; BEGIN
  FOR removed IN SELECT member.rolname FROM pg_auth_members m
      JOIN pg_roles grp ON grp.oid = m.roleid AND grp.rolname = '{TEAMS_GROUP}'
      JOIN pg_roles member ON member.oid = m.member
      WHERE member.rolname NOT IN ({kept}) LOOP
    EXECUTE format('ALTER ROLE %I NOLOGIN', removed);
    EXECUTE format('REVOKE {TEAMS_GROUP} FROM %I', removed);
  END LOOP;
END $$;
"""


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def index_rows_sql(entities: dict[str, list[str]]) -> str:
    """Row-level security on the W&B index: every team reads every alias map (cross-team reads
    are the product), and writes only those of the W&B entities it owns (the registry's, as in
    the trust file), so no team rewrites, rolls back or sets aside another team's aliases.
    The owner (init's migration, the platform's eviction) is not subject to it."""
    owners = ", ".join(
        f"({literal(entity)}, {literal(team_user(team))})"
        for team, owned in sorted(entities.items())
        for entity in owned
    )
    owned_rows = (
        "entity IN (SELECT o.entity FROM wandb_io.entity_owners o WHERE o.role = current_user)"
    )
    policies = "".join(
        f"""
    ALTER TABLE wandb_io.{table} ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS every_team_reads ON wandb_io.{table};
    CREATE POLICY every_team_reads ON wandb_io.{table} FOR SELECT USING (true);
    DROP POLICY IF EXISTS owner_writes ON wandb_io.{table};
    CREATE POLICY owner_writes ON wandb_io.{table} FOR ALL
      USING ({owned_rows}) WITH CHECK ({owned_rows});"""
        for table in INDEX_TABLES
    )
    return f"""
DO $$ BEGIN
  IF to_regclass('wandb_io.alias_maps') IS NOT NULL THEN
    CREATE TABLE IF NOT EXISTS wandb_io.entity_owners (
      entity text NOT NULL, role name NOT NULL, PRIMARY KEY (entity, role));
    DELETE FROM wandb_io.entity_owners;
    {f"INSERT INTO wandb_io.entity_owners VALUES {owners};" if owners else ""}
    GRANT SELECT ON wandb_io.entity_owners TO {TEAMS_GROUP};
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON wandb_io.entity_owners FROM {TEAMS_GROUP};{policies}
  END IF;
END $$;
"""


# Where Dagster's serialized run keeps its code location (its storage names, pinned with Dagster).
RUN_LOCATION_KEYS = (
    "external_pipeline_origin",
    "external_repository_origin",
    "repository_location_origin",
    "location_name",
)
RUN_LOCATION_PATH = "{" + ",".join(RUN_LOCATION_KEYS) + "}"  # a Postgres text[] for #>>
# Dagster's tables whose rows belong to one run.
RUN_TABLES = ("runs", "event_logs", "run_tags")
# Dagster's tables only the daemon and the webserver write (schedules' and sensors' state, their
# ticks, backfills, daemon heartbeats, the schema's version): a team reads them and no more, so
# it cannot stop another team's schedule, cancel its backfill or fake a live daemon.
PLATFORM_ONLY_TABLES = (
    "instigators",
    "jobs",
    "job_ticks",
    "bulk_actions",
    "backfill_tags",
    "daemon_heartbeats",
    "asset_daemon_asset_evaluations",
    "instance_info",
    "secondary_indexes",
    "alembic_version",
)


def run_rows_sql() -> str:
    """Row-level security on Dagster's run tables: every team reads every row (cross-team
    lineage), and changes, deletes or adds rows only of its own code location's runs. A run's
    team is recorded once, when the webserver or the daemon (the owner) inserts it, in a table
    no team may write: a team that rewrites its own run's body claims nothing."""
    owns = (
        "EXISTS (SELECT 1 FROM platform_runs.run_teams t"
        " WHERE t.run_id = {table}.run_id AND t.team = current_user)"
    )
    policies = "".join(
        f"""
    ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS every_team_reads ON public.{table};
    CREATE POLICY every_team_reads ON public.{table} FOR SELECT TO {TEAMS_GROUP} USING (true);
    DROP POLICY IF EXISTS own_runs_write ON public.{table};
    CREATE POLICY own_runs_write ON public.{table} FOR ALL TO {TEAMS_GROUP}
      USING ({owns.format(table=table)}) WITH CHECK ({owns.format(table=table)});"""
        for table in RUN_TABLES
    )
    read_only = "".join(
        f"""
    IF to_regclass('public.{table}') IS NOT NULL THEN
      REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.{table} FROM {TEAMS_GROUP};
    END IF;"""
        for table in PLATFORM_ONLY_TABLES
    )
    return f"""
DO $$ BEGIN
  IF to_regclass('public.runs') IS NOT NULL THEN
    CREATE SCHEMA IF NOT EXISTS platform_runs;
    CREATE TABLE IF NOT EXISTS platform_runs.run_teams (
      run_id varchar(255) PRIMARY KEY, team name NOT NULL);
    GRANT USAGE ON SCHEMA platform_runs TO {TEAMS_GROUP};
    GRANT SELECT ON platform_runs.run_teams TO {TEAMS_GROUP};
    -- The owner's default privileges would give every team the rows of this table too.
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON platform_runs.run_teams FROM {TEAMS_GROUP};
    -- A run made outside a code location (an admin's `dagster job execute`) has no team, and
    -- no team may write it: NULL, never an error that would fail the run's creation.
    CREATE OR REPLACE FUNCTION platform_runs.team_of(body text) RETURNS name
      LANGUAGE plpgsql IMMUTABLE AS $f$
      BEGIN
        RETURN 'team_' || (body::jsonb #>> '{RUN_LOCATION_PATH}');
      EXCEPTION WHEN others THEN
        RETURN NULL;
      END $f$;
    CREATE OR REPLACE FUNCTION platform_runs.record_run_team() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = platform_runs, pg_temp AS $f$
      BEGIN
        INSERT INTO platform_runs.run_teams
          SELECT NEW.run_id, found.team
          FROM (SELECT platform_runs.team_of(NEW.run_body)) AS found(team)
          WHERE found.team IS NOT NULL
          ON CONFLICT (run_id) DO NOTHING;
        RETURN NEW;
      END $f$;
    DROP TRIGGER IF EXISTS record_run_team ON public.runs;
    CREATE TRIGGER record_run_team AFTER INSERT ON public.runs
      FOR EACH ROW EXECUTE FUNCTION platform_runs.record_run_team();
    INSERT INTO platform_runs.run_teams
      SELECT run_id, team FROM (
        SELECT run_id, platform_runs.team_of(run_body) AS team FROM public.runs) found
      WHERE team IS NOT NULL
      ON CONFLICT (run_id) DO NOTHING;{policies}{read_only}
  END IF;
END $$;
"""


def roles_script(
    owner: str,
    database: str,
    passwords: dict[str, str],
    entities: dict[str, list[str]] | None = None,
    limit: int | None = None,
) -> str:
    """The whole script, safe to apply again: after `make env` adds a team, and on every start.
    ``entities``: the W&B entities each team owns (its name unless the registry says other)."""
    entities = entities if entities is not None else {team: [team] for team in passwords}
    check_identifier(owner, "POSTGRES_USER")
    check_identifier(database, "POSTGRES_DB")
    for team in passwords:
        check_team_name(team)
    limit = connection_limit() if limit is None else limit
    parts = [
        "-- Written by `make env` (dagster_team_celery/deploy/postgres_roles.py); applied by init.",
        "-- SCRAM verifiers only: no password is in this file.",
        "BEGIN;",
        # Two inits at once (a Swarm job retried) would collide on the role catalog.
        "SELECT pg_advisory_xact_lock(hashtext('dagster_team_celery.postgres_roles'));",
        f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TEAMS_GROUP}') THEN
    CREATE ROLE {TEAMS_GROUP} NOLOGIN;
  END IF;
END $$;""",
        *(
            team_role_sql(team, scram_verifier(password, stable_salt(team, password)), limit)
            for team, password in sorted(passwords.items())
        ),
        drop_removed_sql(sorted(passwords)),
        grants_sql(owner, database),
        index_rows_sql(entities),
        run_rows_sql(),
        "COMMIT;",
    ]
    return "\n".join(parts)


def apply(script_path: str, environ: dict[str, str] | None = None) -> str:
    """Run the script as the owner (DAGSTER_POSTGRES_*, as the instance connects): what
    ``init`` does on every start, so a team added by `make env` can log in before its services
    start."""
    import psycopg2

    env = os.environ if environ is None else environ
    try:
        with open(script_path) as script_file:
            script = script_file.read()
    except OSError as error:
        raise SystemExit(
            f"Cannot read the Postgres roles script {script_path}: {error.strerror}. `make env`"
            " writes it (keys/postgres-roles.sql) from .env and the team registry."
        ) from None
    connection = psycopg2.connect(
        host=env["DAGSTER_POSTGRES_HOST"],
        port=env.get("DAGSTER_POSTGRES_PORT", "5432"),
        user=env["DAGSTER_POSTGRES_USER"],
        password=env["DAGSTER_POSTGRES_PASSWORD"],
        dbname=env["DAGSTER_POSTGRES_DB"],
        connect_timeout=30,
    )
    try:
        connection.autocommit = True  # the script has its own BEGIN and COMMIT
        with connection.cursor() as cursor:
            cursor.execute(script)
            cursor.execute(
                "SELECT m.rolname, m.rolcanlogin FROM pg_auth_members a"
                " JOIN pg_roles g ON g.oid = a.roleid AND g.rolname = %s"
                " JOIN pg_roles m ON m.oid = a.member ORDER BY 1",
                (TEAMS_GROUP,),
            )
            roles = cursor.fetchall()
    finally:
        connection.close()
    return ", ".join(name for name, can_login in roles if can_login) or "(none)"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="dagster-platform-postgres-roles",
        description="Create or update each team's Postgres role from the script `make env` wrote.",
    )
    parser.add_argument("script", help="the roles script (keys/postgres-roles.sql)")
    args = parser.parse_args(argv)
    print(f"Postgres team roles that can log in: {apply(args.script)}", flush=True)
    return 0
