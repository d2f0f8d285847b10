"""The local process stack runs every team's jobs on that team's own Celery workers."""

import re
import time

import pytest
import requests

from dagster_team_celery.settings import run_queue
from devstack.config import PLATFORM_LOCATION

pytestmark = pytest.mark.local_stack


def test_ui_serves_and_every_team_location_is_loaded(local_stack, client):
    page = requests.get(local_stack.webserver_url, timeout=10)
    assert page.status_code == 200
    assert re.search(r"<title[^>]*>Dagster</title>", page.text)
    statuses = client.locations()
    assert sorted(statuses) == sorted([*local_stack.teams, PLATFORM_LOCATION])
    for status in statuses.values():
        assert status.load_status == "LOADED" and status.error is None, status


def test_each_team_probe_runs_on_that_teams_worker(local_stack, client):
    submitted = {}
    for team in local_stack.teams:
        submitted[team] = (client.submit_job(team, "probe_ping"), time.monotonic())
    for team, (run_id, started) in submitted.items():
        status = client.wait_for_run(run_id, timeout=120)
        elapsed = time.monotonic() - started
        print(f"{team}: probe_ping {status} {elapsed:.1f}s after submit")
        assert status == "SUCCESS"
        workers = client.step_workers(run_id)
        assert set(workers) == {"report_runtime"}
        assert workers["report_runtime"].startswith(f"{team}@"), workers


def test_the_platform_location_evicts_the_shared_cache_without_any_team(local_stack, client):
    """Cache eviction is the platform's job: its own code location, its own venv, no team's
    code or queue involved."""
    run_id = client.submit_job(PLATFORM_LOCATION, "dagster_wandb_io_cache_eviction")
    assert client.wait_for_run(run_id, timeout=120) == "SUCCESS"
    messages = [event.get("message") or "" for event in client.run_events(run_id)]
    report = next(message for message in messages if message.startswith("Evicted "))
    print(f"\n{report}")
    assert str(local_stack.artifact_cache) in report
    assert client.step_workers(run_id) == {}, "an eviction step ran on a team's Celery worker"


def test_each_team_fan_out_runs_every_step_on_that_teams_workers(local_stack, client):
    runs = {team: client.submit_job(team, "probe_fan_out") for team in local_stack.teams}
    for team, run_id in runs.items():
        assert client.wait_for_run(run_id, timeout=300) == "SUCCESS"
        workers = client.step_workers(run_id)
        assert len(workers) == 50, f"{team}: {len(workers)} steps reported a Celery worker"
        assert {worker.split("@")[0] for worker in workers.values()} == {team}


def test_flower_lists_every_team_worker_behind_its_login(local_stack):
    assert requests.get(f"{local_stack.flower_url}/api/workers", timeout=10).status_code == 401
    response = requests.get(
        f"{local_stack.flower_url}/api/workers",
        # Status comes from the workers' heartbeats, which Flower hears on every team's event
        # channels (every_team_events.py); its inspect calls reach no team's workers.
        params={"status": "1"},
        auth=local_stack.flower_credentials,
        timeout=30,
    )
    assert response.status_code == 200
    online = {name.split("@")[0] for name, alive in response.json().items() if alive}
    # Each team's step worker, and its warm run worker.
    assert online == {*local_stack.teams, *(run_queue(team) for team in local_stack.teams)}


def test_no_secret_appears_on_any_process_command_line(local_stack):
    # `ps` shows every user's command lines; the Redis password used to be one of them.
    import psutil

    secrets = [value for value in local_stack.secrets.values() if isinstance(value, str)]
    secrets += list(local_stack.secrets["team_signing_keys"].values())
    leaders = [service.pid for service in local_stack.services.values() if service.pid]
    exposed = []
    for pid in leaders:
        try:
            leader = psutil.Process(pid)
            for process in [leader, *leader.children(recursive=True)]:
                command_line = " ".join(process.cmdline())
                exposed += [process.pid for secret in secrets if secret in command_line]
        except psutil.NoSuchProcess:
            continue
    assert leaders and not exposed, f"processes with a secret on the command line: {exposed}"


def test_local_postgres_socket_is_private_and_asks_for_a_password(local_stack):
    # Before: trust authentication on a socket directory with default permissions, so any
    # local user could connect as the superuser without a password.
    import stat

    import psycopg2

    socket_dir = local_stack.postgres_socket_dir
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    postgres = local_stack.postgres_parts()
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(
            host=str(socket_dir), port=postgres["port"], user=postgres["user"], dbname="postgres"
        )
