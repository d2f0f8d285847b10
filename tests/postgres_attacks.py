"""What a hostile team's code tries against Postgres with its own credentials, in both modes:
the probe runs in the team's environment (its process locally, its container in compose) and
connects as that environment does (DAGSTER_POSTGRES_*). Before each team had its own role, its
processes held the bootstrap superuser's login and every attack below succeeded."""

import json
import subprocess
from dataclasses import dataclass

# Each refused by the team's role (postgres_roles.py), with what it would have done.
REFUSED = {
    "a shell in the database's container": "COPY (SELECT '') TO PROGRAM 'id'",
    "read the server's files": "SELECT pg_read_file('/etc/passwd')",
    "drop Dagster's run table": "DROP TABLE runs",
    "empty every team's event log": "TRUNCATE event_logs",
    "create a table": "CREATE TABLE intruder (i int)",
    "make itself superuser": "ALTER ROLE {attacker} SUPERUSER",
    "change the victim's password": "ALTER ROLE {victim} PASSWORD 'taken'",
    "act as the platform's owner": "SET ROLE {owner}",
    "drop the database": "DROP DATABASE {database}",
    "claim the victim's W&B entity": (
        "INSERT INTO wandb_io.entity_owners VALUES ('{victim_entity}', '{attacker}')"
    ),
    "forge an alias map under the victim's entity": (
        "INSERT INTO wandb_io.alias_maps (entity, project, name)"
        " VALUES ('{victim_entity}', 'any', 'forged')"
    ),
    "move another team's ids into collisions": "SELECT setval('runs_id_seq', 1)",
    "stop every schedule and sensor": "UPDATE instigators SET status = 'STOPPED'",
    "fake a live daemon": "UPDATE daemon_heartbeats SET timestamp = now()",
    "forge an event in the victim's run": (
        "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp)"
        " SELECT run_id, '{{}}', 'RUN_FAILURE', now() FROM runs WHERE {victim_runs} LIMIT 1"
    ),
}
# The victim's runs, found as any team can read them: by the code location in the run's body.
VICTIM_RUNS = (
    "run_body::jsonb #>> '{{external_pipeline_origin,external_repository_origin,"
    "repository_location_origin,location_name}}' = '{victim_entity}'"
)
# Allowed by the grants, yet they reach no row: row-level security on the W&B index.
NO_ROWS = {
    "roll back the victim's aliases": (
        "UPDATE wandb_io.alias_maps SET document = NULL WHERE entity = '{victim_entity}'"
    ),
    "delete the victim's aliases": (
        "DELETE FROM wandb_io.alias_maps WHERE entity = '{victim_entity}'"
    ),
    # Row-level security on Dagster's run tables (postgres_roles.run_rows_sql).
    "mark the victim's runs failed": "UPDATE runs SET status = 'FAILURE' WHERE {victim_runs}",
    "erase the victim's run logs": (
        "DELETE FROM event_logs WHERE run_id IN (SELECT run_id FROM runs WHERE {victim_runs})"
    ),
    "retag the victim's runs": (
        "UPDATE run_tags SET value = 'forged'"
        " WHERE run_id IN (SELECT run_id FROM runs WHERE {victim_runs})"
    ),
    "delete the victim's runs": "DELETE FROM runs WHERE {victim_runs}",  # last: it cascades
}


def aliases_digest_query(entity: str) -> str:
    """What the owner reads before and after the attacks: a digest of the entity's aliases."""
    return (
        "SELECT coalesce(md5(string_agg(document::text, ',' ORDER BY project, name)), '')"
        f" FROM wandb_io.alias_maps WHERE entity = '{entity}'"
    )


PROBE = """
import json, os, sys
import psycopg2

statements = json.loads(sys.argv[1])
login = dict(
    host=os.environ["DAGSTER_POSTGRES_HOST"], port=os.environ["DAGSTER_POSTGRES_PORT"],
    user=os.environ["DAGSTER_POSTGRES_USER"], password=os.environ["DAGSTER_POSTGRES_PASSWORD"],
    dbname=os.environ["DAGSTER_POSTGRES_DB"], connect_timeout=30,
)
outcomes = {}
for name, statement in statements.items():
    connection = psycopg2.connect(**login)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            outcomes[name] = {"done": cursor.rowcount}
    except psycopg2.Error as error:
        outcomes[name] = {"refused": (error.pgerror or str(error)).strip().splitlines()[0]}
    finally:
        connection.close()
connection = psycopg2.connect(**login)
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolconnlimit,"
        " current_setting('statement_timeout'), current_setting('lock_timeout')"
        " FROM pg_roles WHERE rolname = current_user"
    )
    role = dict(zip(("user", "superuser", "createrole", "createdb", "connection_limit",
                     "statement_timeout", "lock_timeout"), cursor.fetchone()))
print(json.dumps({"role": role, "outcomes": outcomes}))
"""


@dataclass
class Probed:
    role: dict
    outcomes: dict[str, dict]


def statements(attacker: str, victim: str, owner: str, database: str) -> dict[str, str]:
    values = {
        "attacker": f"team_{attacker}",
        "victim": f"team_{victim}",
        "victim_entity": victim,
        "owner": owner,
        "database": database,
    }
    values["victim_runs"] = VICTIM_RUNS.format(**values)
    return {name: sql.format(**values) for name, sql in {**REFUSED, **NO_ROWS}.items()}


def run_state_query(run_id: str) -> str:
    """What the owner reads of one of the victim's runs before and after the attacks: its
    status, how many events it has and a digest of its tags (None: no such run)."""
    return (
        f"SELECT status || ' ' || (SELECT count(*) FROM event_logs WHERE run_id = '{run_id}')"
        " || ' ' || coalesce((SELECT md5(string_agg(key || '=' || value, ',' ORDER BY key))"
        f" FROM run_tags WHERE run_id = '{run_id}'), '') FROM runs WHERE run_id = '{run_id}'"
    )


def probe(
    run_python: list[str],
    attacker: str,
    victim: str,
    owner: str,
    database: str,
    env: dict[str, str] | None = None,
) -> Probed:
    """``run_python``: the command that runs Python in the attacker's environment (``env``)."""
    arguments = json.dumps(statements(attacker, victim, owner, database))
    done = subprocess.run(
        [*run_python, "-c", PROBE, arguments], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Probed(found["role"], found["outcomes"])


def assert_confined(probed: Probed, attacker: str) -> None:
    """The attacker's role is its own, bounded, and every attack failed."""
    assert probed.role["user"] == f"team_{attacker}", probed.role
    assert not (probed.role["superuser"] or probed.role["createrole"] or probed.role["createdb"])
    assert probed.role["connection_limit"] > 0, probed.role
    assert probed.role["statement_timeout"] != "0", probed.role
    succeeded = {
        name: outcome
        for name, outcome in probed.outcomes.items()
        if (name in REFUSED and "refused" not in outcome)
        or (name in NO_ROWS and outcome.get("done") != 0)
    }
    assert not succeeded, f"{attacker}'s role could: {succeeded}"
