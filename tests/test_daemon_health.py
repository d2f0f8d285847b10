"""`dagster-daemon-healthcheck` (compose's check of the daemon, and local mode's readiness)
reads the daemon's heartbeats from the instance's database, as `dagster-daemon liveness-check`
does, and counts only those newer than the daemon process it is asked about."""

import time

import pytest

from dagster_team_celery.deploy import daemon_health

pytestmark = pytest.mark.local_stack


@pytest.fixture
def instance_environment(local_stack, monkeypatch):
    parts = local_stack.postgres_parts()
    for key, name in (("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("db", "DB")):
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{name}", parts[key])
    monkeypatch.setenv("DAGSTER_POSTGRES_PASSWORD", parts["password"])


def test_a_beating_daemon_is_live_and_none_is_counted_from_before_it(
    local_stack, instance_environment, capsys
):
    # The daemon's loops beat every 30 s (Dagster's default), each in its own row.
    assert daemon_health.main(["--since", str(time.time() - 90)]) == 0
    assert "loop(s) beat since" in capsys.readouterr().out
    # A daemon started after every heartbeat so far has not beaten yet: not live.
    assert daemon_health.main(["--since", str(time.time() + 5)]) == 1
    assert local_stack.services["daemon"].is_ready()


def test_an_unreachable_instance_is_not_live_in_local_mode(local_stack, monkeypatch):
    # Local mode's readiness answers False rather than raising, as a dead database does.
    monkeypatch.setattr(
        local_stack,
        "postgres_parts",
        lambda: {"host": "127.0.0.1", "port": "1", "user": "x", "password": "x", "db": "x"},
    )
    assert not local_stack.services["daemon"].is_ready()
