"""On the running local stack, a process holding one team's credentials cannot act as another
team: with W&B artifacts, it has no other team's key, and its own key is refused under the other
team's entity before anything is written; on the broker, its Redis user reaches none of the
other team's queue, results or worker control; in Postgres, its role reaches rows only, and no
row of the other team's W&B aliases."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis
from kombu.exceptions import OperationalError

from dagster_team_celery.control import team_app
from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, key_prefix
from dagster_wandb_io.keys import PRIVATE_KEY_ENV
from tests import object_store_attacks
from tests.faults.conftest import failure_messages
from tests.postgres_attacks import aliases_digest_query, assert_confined, probe, run_state_query

pytestmark = pytest.mark.local_stack

# Run with the ml team's environment: publish under the bakery's entity, as a hostile or buggy
# ml asset could.
PUBLISH_AS_THE_BAKERY = """
import os, sys
from pathlib import Path
from dagster_wandb_io.config import WriteConfig
from dagster_wandb_io.errors import ConfigurationError
from dagster_wandb_io.runs import build_run_spec
from dagster_wandb_io.store import ArtifactStore, StoreSettings

settings = StoreSettings(base_dir=Path(os.environ["DAGSTER_WANDB_IO_BASE_DIR"]), mode="offline",
                         entity="bakery", project="cakes", host="https://api.wandb.ai")
run = build_run_spec(entity="bakery", project="cakes", host="https://api.wandb.ai", api_key=None,
                     dagster_run_id="00000000-0000-0000-0000-00000000a77a")
try:
    store = ArtifactStore(settings)
    store.write({"forged": True}, name="baked_cakes", config=WriteConfig(), run=run)
except ConfigurationError as refused:
    print(refused)
    sys.exit(3)
"""


def team_processes(local_stack, team: str) -> list[psutil.Process]:
    found = []
    for name, service in local_stack.services.items():
        if name.startswith(f"{team}-") and service.pid:
            leader = psutil.Process(service.pid)
            found += [leader, *leader.children(recursive=True)]
    return found


def test_a_teams_processes_hold_only_their_own_signing_key(local_stack):
    keys = local_stack.secrets["team_signing_keys"]
    assert len(set(keys.values())) == len(keys), "every team has its own key"
    for team in local_stack.teams:
        others = {key for other, key in keys.items() if other != team}
        processes = team_processes(local_stack, team)
        assert processes, f"no running process of {team}"
        for process in processes:
            try:
                environment = process.environ()
            except psutil.NoSuchProcess:
                continue
            assert environment.get(PRIVATE_KEY_ENV) == keys[team], (team, process.name())
            assert not others & set(environment.values()), f"{team} holds another team's key"


def test_the_ml_team_cannot_publish_under_the_bakerys_entity(local_stack):
    cache = Path(local_stack.team_env("ml")["DAGSTER_WANDB_IO_BASE_DIR"])
    bakery_entries = cache / "dagster_wandb_io" / "cache" / "bakery"
    index = cache / "dagster_wandb_io" / "index" / "bakery"

    def snapshot() -> set[str]:
        return {
            str(p) for root in (bakery_entries, index) if root.exists() for p in root.rglob("*")
        }

    before = snapshot()
    attempt = subprocess.run(
        [sys.executable, "-c", PUBLISH_AS_THE_BAKERY],
        env={**os.environ, **local_stack.team_env("ml")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert attempt.returncode == 3, attempt.stdout + attempt.stderr
    assert "Team 'ml' cannot publish artifacts under the W&B entity 'bakery'" in attempt.stdout
    assert snapshot() == before, "the refused write left files in the bakery's cache or index"


def assert_each_team_holds_only_its_own(local_stack, kind: str, holds_its_own) -> None:
    """Each live process of each team holds its own ``kind`` password (``holds_its_own``), no
    other team's, and not the platform's."""
    passwords = local_stack.secrets[f"team_{kind}_passwords"]
    assert len(set(passwords.values())) == len(passwords), "every team has its own password"
    for team in local_stack.teams:
        others = [password for other, password in passwords.items() if other != team]
        for process in team_processes(local_stack, team):
            try:
                environment = process.environ()
            except psutil.NoSuchProcess:
                continue
            assert holds_its_own(team, environment, passwords[team]), (team, process.name())
            values = " ".join(environment.values())
            assert not any(password in values for password in others), team
            assert local_stack.secrets[f"{kind}_password"] not in values, "the platform's"


def test_a_teams_processes_hold_only_their_own_redis_password(local_stack):
    assert_each_team_holds_only_its_own(
        local_stack,
        "redis",
        lambda team, env, password: f"team_{team}:{password}@" in env[BROKER_URL_ENV],
    )


def test_a_teams_processes_connect_to_postgres_as_their_own_role(local_stack):
    assert_each_team_holds_only_its_own(
        local_stack,
        "postgres",
        lambda team, env, password: (
            env["DAGSTER_POSTGRES_USER"] == f"team_{team}"
            and env["DAGSTER_POSTGRES_PASSWORD"] == password
        ),
    )


def test_the_ml_team_cannot_reach_the_bakerys_queue_or_results(local_stack, client):
    run_id = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(run_id, timeout=180) == "SUCCESS"
    bakery = key_prefix("bakery")
    admin = redis.Redis.from_url(f"{local_stack.redis_base_url()}/1")
    results = list(admin.scan_iter(f"{bakery}celery-task-meta-*"))
    assert results, "the bakery's step stored its result under the bakery's prefix"
    ml = local_stack.team_env("ml")
    as_ml = redis.Redis.from_url(ml[BACKEND_URL_ENV])
    as_ml_broker = redis.Redis.from_url(ml[BROKER_URL_ENV])
    attacks = {
        "read a bakery result": lambda: as_ml.get(results[0]),
        "delete a bakery result": lambda: as_ml.delete(results[0]),
        "push onto the bakery's queue": lambda: as_ml_broker.lpush(f"{bakery}bakery", b"x"),
        "revoke the bakery's steps": lambda: as_ml_broker.publish(
            f"{bakery}/0.celery.pidbox", b"x"
        ),
    }
    for attack, attempt in attacks.items():
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
            pytest.fail(f"ml could {attack}")
    # A whole Celery client aimed at the bakery's queue with ml's user.
    app = team_app("bakery", broker=ml[BROKER_URL_ENV], backend=ml[BACKEND_URL_ENV])
    try:
        with pytest.raises((OperationalError, redis.exceptions.NoPermissionError)):
            app.send_task("execute_plan", queue="bakery", retry=False)
    finally:
        app.close()
    assert admin.exists(results[0]), "the bakery's result is still there"


def test_flowers_http_login_is_not_its_redis_password(local_stack):
    # As in compose (FLOWER_PASSWORD, FLOWER_REDIS_PASSWORD): who learns the web UI's login
    # cannot log in to Redis as Flower, which hears every team's events.
    http_password = local_stack.flower_credentials[1]
    redis_password = local_stack.secrets["flower_redis_password"]
    assert http_password != redis_password
    as_flower = redis.Redis.from_url(local_stack.flower_redis_url())
    assert as_flower.execute_command("ACL", "WHOAMI") == b"flower"
    with_http_password = redis.Redis.from_url(
        local_stack.flower_redis_url().replace(redis_password, http_password)
    )
    with pytest.raises(redis.exceptions.AuthenticationError):
        with_http_password.ping()


def postgres_connection(local_stack, team: str | None = None):
    """An autocommit connection to the stack's database as its owner, or as ``team``'s role."""
    parts = local_stack.postgres_parts()
    login = {key: parts[key] for key in ("host", "port", "user", "password")}
    if team is not None:
        env = local_stack.team_env(team)
        login |= {
            "user": env["DAGSTER_POSTGRES_USER"],
            "password": env["DAGSTER_POSTGRES_PASSWORD"],
        }
    connection = psycopg2.connect(**login, dbname=parts["db"])
    connection.autocommit = True
    return connection


def test_the_ml_teams_postgres_role_cannot_harm_the_bakery(local_stack, client):
    bakery = client.submit_job("bakery", "cake_production_job")
    assert client.wait_for_run(bakery, timeout=300) == "SUCCESS", failure_messages(client, bakery)
    owner = local_stack.postgres_parts()

    def as_owner(query: str) -> str | None:
        connection = postgres_connection(local_stack)
        try:
            with connection.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchone()[0]
        finally:
            connection.close()

    before = [as_owner(aliases_digest_query("bakery")), as_owner(run_state_query(bakery))]
    assert before[1] and before[1].startswith("SUCCESS "), before
    env = {**os.environ, **local_stack.team_env("ml")}
    probed = probe([sys.executable], "ml", "bakery", owner["user"], owner["db"], env=env)
    assert_confined(probed, "ml")
    after = [as_owner(aliases_digest_query("bakery")), as_owner(run_state_query(bakery))]
    assert after == before and before[0] != ""
    forecast = client.submit_job("ml", "forecast_job")
    assert client.wait_for_run(forecast, timeout=300) == "SUCCESS", failure_messages(
        client, forecast
    )


def test_the_ml_teams_object_store_identity_cannot_touch_the_bakerys_objects(local_stack, client):
    """With ml's own keys, each attack of tests/object_store_attacks.py on the bakery's step
    outputs, logs and artifacts is refused (with the administrator's keys, which every team
    held before, a pickle written over the bakery's step output ran in the bakery's worker);
    nothing of the bakery's changes, its next run loads its outputs, and ml reads its artifact."""
    bakery = client.submit_job("bakery", "cake_production_job")
    assert client.wait_for_run(bakery, timeout=300) == "SUCCESS", failure_messages(client, bakery)
    administrator = {**os.environ, **local_stack.dagster_env()}
    entity = local_stack.team_entity("bakery")
    keys, before = object_store_attacks.survey([sys.executable], "bakery", entity, administrator)
    ml = {**os.environ, **local_stack.team_env("ml")}
    assert ml["AWS_ACCESS_KEY_ID"] == "team_ml"
    attacked = object_store_attacks.attack([sys.executable], "ml", "bakery", keys, env=ml)
    object_store_attacks.assert_confined(attacked, "ml")
    assert (
        object_store_attacks.survey([sys.executable], "bakery", entity, administrator)[1] == before
    )
    again = client.submit_job("bakery", "cake_production_job")
    assert client.wait_for_run(again, timeout=300) == "SUCCESS", failure_messages(client, again)
    forecast = client.submit_job("ml", "forecast_job")
    assert client.wait_for_run(forecast, timeout=300) == "SUCCESS", failure_messages(
        client, forecast
    )


def test_a_run_made_outside_any_code_location_is_created_and_no_team_may_write_it(local_stack):
    """The run tables' trigger reads each new run's code location: a run without one (an
    admin's `dagster job execute`, a body it cannot parse) is still created, and belongs to no
    team, so no team's role can change it."""
    owner, ml = postgres_connection(local_stack), postgres_connection(local_stack, "ml")
    runs = {"no-location-run": "{}", "unparsable-run": "not json"}
    try:
        with owner.cursor() as cursor, ml.cursor() as attacker:
            for run_id, body in runs.items():
                cursor.execute(
                    "INSERT INTO runs (run_id, pipeline_name, status, run_body)"
                    " VALUES (%s, 'admin_job', 'SUCCESS', %s)",
                    (run_id, body),
                )
            cursor.execute(
                "SELECT count(*) FROM platform_runs.run_teams WHERE run_id = ANY(%s)", (list(runs),)
            )
            assert cursor.fetchone()[0] == 0
            attacker.execute(
                "UPDATE runs SET status = 'FAILURE' WHERE run_id = ANY(%s)", (list(runs),)
            )
            assert attacker.rowcount == 0
    finally:
        with owner.cursor() as cursor:
            cursor.execute("DELETE FROM runs WHERE run_id = ANY(%s)", (list(runs),))
        owner.close()
        ml.close()
