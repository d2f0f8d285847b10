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
}
# Allowed by the grants, yet they reach no row: row-level security on the W&B index.
NO_ROWS = {
    "roll back the victim's aliases": (
        "UPDATE wandb_io.alias_maps SET document = NULL WHERE entity = '{victim_entity}'"
    ),
    "delete the victim's aliases": (
        "DELETE FROM wandb_io.alias_maps WHERE entity = '{victim_entity}'"
    ),
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
    return {name: sql.format(**values) for name, sql in {**REFUSED, **NO_ROWS}.items()}


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
