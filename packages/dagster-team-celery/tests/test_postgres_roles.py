"""The teams' Postgres roles script: what it names, and what it refuses to write. What the roles
can and cannot do on a real server is tested from each team's processes (the platform's
tests/test_team_isolation_local.py and, from a team's container, tests/test_container_e2e.py)."""

import base64
import hashlib
import hmac
import json

import pytest
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import serialize_value

from dagster_team_celery.deploy import postgres_roles


def test_the_verifier_is_what_postgres_stores_for_the_password():
    salt = bytes(range(16))
    verifier = postgres_roles.scram_verifier("pencil", salt)
    scheme, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, encoded_salt = iterations_salt.partition(":")
    stored, _, server = keys.partition(":")
    assert (scheme, int(iterations), base64.b64decode(encoded_salt)) == (
        "SCRAM-SHA-256",
        4096,
        salt,
    )
    # RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")).
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert base64.b64decode(stored) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server) == hmac.digest(salted, b"Server Key", "sha256")


def test_the_script_holds_verifiers_not_passwords_and_is_stable():
    passwords = {"bakery": "b" * 48, "ml": "m" * 48}
    script = postgres_roles.roles_script("dagster", "dagster", passwords, limit=40)
    assert "b" * 48 not in script and "m" * 48 not in script
    assert script.count("CONNECTION LIMIT 40") == 2 * 2  # each role's ALTER and CREATE
    assert "('bakery', 'team_bakery')" in script and "('ml', 'team_ml')" in script
    assert postgres_roles.roles_script("dagster", "dagster", passwords, limit=40) == script


@pytest.mark.parametrize(
    ("owner", "database", "teams"),
    [
        ('dagster"; DROP', "dagster", {"bakery": "x"}),
        ("dagster", "dag ster", {"bakery": "x"}),
        ("dagster", "dagster", {"Bakery'": "x"}),
    ],
)
def test_a_name_that_is_not_a_plain_identifier_is_refused(owner, database, teams):
    with pytest.raises(ValueError, match="not"):
        postgres_roles.roles_script(owner, database, teams)


def test_an_empty_password_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="make env"):
        postgres_roles.roles_script("dagster", "dagster", {"bakery": ""})


@pytest.mark.parametrize("raw", ["-1", "many", "2"])
def test_a_bad_connection_limit_names_the_setting(raw):
    with pytest.raises(ValueError, match=postgres_roles.CONNECTION_LIMIT_ENV):
        postgres_roles.connection_limit({postgres_roles.CONNECTION_LIMIT_ENV: raw})


def test_dagsters_run_tables_are_written_only_for_the_teams_own_runs():
    script = postgres_roles.roles_script("dagster", "dagster", {"bakery": "b" * 48})
    for table in ("runs", "event_logs", "run_tags"):
        assert f"ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;" in script
        assert f"CREATE POLICY own_runs_write ON public.{table} FOR ALL TO dagster_teams" in script
    # The run -> team table is the teams' to read, never to write (default privileges would).
    assert "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON platform_runs.run_teams" in script
    assert "AFTER INSERT ON public.runs" in script
    for table in ("instigators", "jobs", "job_ticks", "bulk_actions", "daemon_heartbeats"):
        assert f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.{table} FROM" in script


def test_the_run_location_path_finds_the_location_in_a_run_dagster_serialized():
    """Dagster's storage names (private serdes, dagster==1.13.27 pinned): the trigger reads a
    run's code location from its stored body along this path."""
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            GrpcServerCodeLocationOrigin(host="bakery-code", port=4000, location_name="bakery"),
            "__repository__",
        ),
        "cake_production_job",
    )
    run = DagsterRun(job_name="cake_production_job", run_id="r1", remote_job_origin=origin)
    node = json.loads(serialize_value(run))
    for key in postgres_roles.RUN_LOCATION_KEYS:
        node = node[key]
    assert node == "bakery"
