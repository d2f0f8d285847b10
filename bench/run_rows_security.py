"""What row-level security on Dagster's run tables costs a team's event writes, on the
platform's local stack: a team's role inserts events into a run of its own code location with
the policy on, then off (vanilla has none), alternated. Postgres times each insert of many rows
itself (EXPLAIN ANALYZE), so the figure is the policy's check per event, not client noise."""

import json
import statistics
import uuid

import psycopg2

from dagster_team_celery.deploy.postgres_roles import RUN_LOCATION_KEYS
from devstack.local_stack import LocalStack

ROWS = 20_000
ROUNDS = 7
EVENT = json.dumps({"__class__": "EventLogEntry", "padding": "x" * 1500})


def _connect(parts: dict[str, str]):
    connection = psycopg2.connect(
        host=parts["host"], port=parts["port"], user=parts["user"],
        password=parts["password"], dbname=parts["db"],
    )  # fmt: skip
    connection.autocommit = True
    return connection


def _run_body(team: str) -> str:
    """A stored run's body, down to the one field the trigger reads."""
    body: dict = {}
    node = body
    *parents, leaf = RUN_LOCATION_KEYS
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = team
    return json.dumps(body)


def _insert_microseconds(cursor, run_id: str) -> float:
    cursor.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO event_logs"
        " (run_id, event, dagster_event_type, timestamp)"
        " SELECT %s, %s, 'STEP_OUTPUT', now() FROM generate_series(1, %s)",
        (run_id, EVENT, ROWS),
    )
    return cursor.fetchone()[0][0]["Execution Time"] * 1000 / ROWS


def event_insert_cost(stack: LocalStack, team: str) -> dict:
    owner_parts = stack.postgres_parts()
    env = stack.team_env(team)
    team_parts = {
        **owner_parts,
        "user": env["DAGSTER_POSTGRES_USER"],
        "password": env["DAGSTER_POSTGRES_PASSWORD"],
    }
    owner, member = _connect(owner_parts), _connect(team_parts)
    run_id = f"bench-{uuid.uuid4()}"
    measured: dict[str, list[float]] = {"on": [], "off": []}
    try:
        with owner.cursor() as admin, member.cursor() as cursor:
            admin.execute(
                "INSERT INTO runs (run_id, pipeline_name, status, run_body)"
                " VALUES (%s, 'bench', 'STARTED', %s)",
                (run_id, _run_body(team)),
            )
            for _ in range(ROUNDS):
                for mode in ("on", "off"):
                    state = "ENABLE" if mode == "on" else "DISABLE"
                    admin.execute(f"ALTER TABLE event_logs {state} ROW LEVEL SECURITY")
                    measured[mode].append(_insert_microseconds(cursor, run_id))
    finally:
        with owner.cursor() as admin:
            admin.execute("ALTER TABLE event_logs ENABLE ROW LEVEL SECURITY")
            admin.execute("DELETE FROM event_logs WHERE run_id = %s", (run_id,))
            admin.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))
        owner.close()
        member.close()
    on, off = (statistics.median(measured[mode]) for mode in ("on", "off"))
    return {
        "rows_per_insert": ROWS,
        "rounds": ROUNDS,
        "policy_on_us_per_event": round(on, 2),
        "policy_off_us_per_event": round(off, 2),
        "added_us_per_event": round(on - off, 2),
        "all_us_per_event": {mode: [round(x, 2) for x in v] for mode, v in measured.items()},
    }
