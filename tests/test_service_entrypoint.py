"""The Swarm services' entrypoint (dagster_team_celery/deploy/service_entrypoint.py): secrets become
environment variables, and a service waits for the init job's migration instead of racing it.
Against the local stack's real Postgres: its instance is migrated, a new database is not."""

import secrets
import subprocess
import sys

import psycopg2
import pytest

from dagster_team_celery.deploy.service_entrypoint import (
    instance_schema_revisions,
    secrets_as_environment,
    wait_for_instance,
)

pytestmark = pytest.mark.local_stack

ENTRYPOINT_MODULE = "dagster_team_celery.deploy.service_entrypoint"


def test_secret_files_named_like_variables_become_variables(tmp_path):
    (tmp_path / "DAGSTER_POSTGRES_PASSWORD").write_text("s3cret\n")
    (tmp_path / "AWS_SECRET_ACCESS_KEY").write_text("no-newline")
    (tmp_path / "not-a-variable").write_text("ignored")
    (tmp_path / "NESTED").mkdir()
    assert secrets_as_environment(tmp_path) == {
        "AWS_SECRET_ACCESS_KEY": "no-newline",
        "DAGSTER_POSTGRES_PASSWORD": "s3cret",
    }
    assert secrets_as_environment(tmp_path / "missing") == {}


def test_the_command_runs_with_the_environment_and_a_missing_command_is_named():
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster_team_celery.deploy.service_entrypoint",
            "--",
            "printenv",
            "HOME",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip()
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster_team_celery.deploy.service_entrypoint",
            "--",
            "no-such-binary",
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0
    assert "'no-such-binary' is not a command in this image" in missing.stderr


def _instance_environment(stack, database: str | None = None) -> dict[str, str]:
    parts = stack.postgres_parts()
    return {
        "DAGSTER_POSTGRES_HOST": parts["host"],
        "DAGSTER_POSTGRES_PORT": parts["port"],
        "DAGSTER_POSTGRES_USER": parts["user"],
        "DAGSTER_POSTGRES_PASSWORD": parts["password"],
        "DAGSTER_POSTGRES_DB": database or parts["db"],
    }


def test_a_migrated_instance_is_ready_at_once(local_stack):
    environment = _instance_environment(local_stack)
    current, head = instance_schema_revisions(environment)
    assert current == head
    wait_for_instance(environment, timeout_seconds=5)


def test_a_service_waits_for_an_unmigrated_instance_and_names_the_init_job(local_stack, capsys):
    database = f"swarm_wait_{secrets.token_hex(4)}"
    environment = _instance_environment(local_stack)
    connection = psycopg2.connect(
        host=environment["DAGSTER_POSTGRES_HOST"],
        port=environment["DAGSTER_POSTGRES_PORT"],
        user=environment["DAGSTER_POSTGRES_USER"],
        password=environment["DAGSTER_POSTGRES_PASSWORD"],
        dbname=environment["DAGSTER_POSTGRES_DB"],
    )
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {database}")
    try:
        fresh = _instance_environment(local_stack, database)
        assert instance_schema_revisions(fresh)[0] is None
        with pytest.raises(SystemExit) as stopped:
            wait_for_instance(fresh, timeout_seconds=3, poll_seconds=0.5)
        assert "not ready" in str(stopped.value) and "`init` job" in str(stopped.value)
        assert "schema revision none" in capsys.readouterr().err
        # Nothing was created while waiting: the init job's migration stays the only writer.
        assert instance_schema_revisions(fresh)[0] is None
    finally:
        connection.cursor().execute(f"DROP DATABASE {database}")
        connection.close()


def test_an_unreachable_or_unconfigured_instance_is_named(local_stack):
    unreachable = {**_instance_environment(local_stack), "DAGSTER_POSTGRES_PORT": "1"}
    with pytest.raises(SystemExit) as stopped:
        wait_for_instance(unreachable, timeout_seconds=1, poll_seconds=0.5)
    assert "OperationalError" in str(stopped.value)
    with pytest.raises(SystemExit) as unset:
        wait_for_instance({}, timeout_seconds=1)
    assert "DAGSTER_POSTGRES_USER is not set" in str(unset.value)
