"""The container-mode launcher: the platform alone decides what a run container gets, and
Terminate is answered from the database, with the engine work later.

dagster-docker's own ``terminate`` talks to the engine three times inside the webserver's
GraphQL request. These tests point the launcher at engines that hang or are gone, which is what
a loaded or dead engine looks like to the request.
"""

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

from dagster_team_celery.runs.container_launcher import RUN_CONTAINER_CONTEXT_ENV
from dagster_team_celery.runs.credentials import (
    TEAM_POSTGRES_CREDENTIALS_ENV,
    TEAM_REDIS_CREDENTIALS_ENV,
)
from dagster_team_celery.settings import PlatformConfigError

LAUNCHER = {
    "module": "dagster_team_celery.runs.container_launcher",
    "class": "TeamDockerRunLauncher",
    "config": {"env_vars": ["DAGSTER_POSTGRES_HOST"], "container_kwargs": {"stop_timeout": 30}},
}
PLATFORM_CONTEXT = {
    "docker": {
        "networks": ["mlplatform"],
        "container_kwargs": {"volumes": ["mlplatform-artifact-cache:/opt/dagster/artifact-cache"]},
    }
}
# What a hostile team's code server can report as its container context.
HOSTILE_CONTEXT = {
    "docker": {
        "networks": ["host"],
        "env_vars": ["DAGSTER_CELERY_BROKER_URL_ML", "STOLEN=1"],
        "container_kwargs": {
            "privileged": True,
            "volumes": ["/:/host", "/var/run/docker.sock:/var/run/docker.sock"],
            "user": "0",
        },
    }
}


@pytest.fixture
def instance():
    with instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


def started_run(instance, tags: dict[str, str]):
    return create_run_for_test(
        instance, job_name="probe_sleep", status=DagsterRunStatus.STARTED, tags=tags
    )


def hostile_origin() -> JobPythonOrigin:
    repository = RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python",
        code_pointer=ModuleCodePointer("bakery.definitions", "defs", "/opt/dagster/app"),
        container_image="mlplatform/bakery:latest",
        container_context=HOSTILE_CONTEXT,
    )
    return JobPythonOrigin("probe_sleep", repository)


def test_a_code_server_cannot_choose_what_its_run_container_gets(instance, monkeypatch):
    monkeypatch.setenv(RUN_CONTAINER_CONTEXT_ENV, json.dumps(PLATFORM_CONTEXT))
    run = create_run_for_test(instance, job_name="probe_sleep", job_code_origin=hostile_origin())
    context = instance.run_launcher.get_container_context(run)
    assert context.networks == ["mlplatform"]
    assert context.env_vars == ["DAGSTER_POSTGRES_HOST"]
    assert context.container_kwargs == {
        "stop_timeout": 30,
        "volumes": ["mlplatform-artifact-cache:/opt/dagster/artifact-cache"],
    }


def test_a_malformed_platform_context_names_the_variable(instance, monkeypatch):
    monkeypatch.setenv(RUN_CONTAINER_CONTEXT_ENV, "{networks: mlplatform")
    run = create_run_for_test(instance, job_name="probe_sleep")
    with pytest.raises(ValueError, match=f"{RUN_CONTAINER_CONTEXT_ENV} is not JSON"):
        instance.run_launcher.get_container_context(run)


def engine_messages(instance, run_id: str) -> list[str]:
    return [
        entry.message
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.is_engine_event
    ]


@pytest.fixture
def hanging_engine(tmp_path: Path, monkeypatch):
    """A Docker socket that accepts connections and never answers."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield accepted
    # Hang up, so the launcher's thread fails now, while the instance it reports to still exists.
    for connection in accepted:
        connection.close()
    server.close()
    for thread in threading.enumerate():
        if thread.name.startswith("stop-run-"):
            thread.join(timeout=30)


def test_terminate_answers_while_the_engine_hangs(instance, hanging_engine):
    run = started_run(instance, {DOCKER_CONTAINER_ID_TAG: "0123456789ab"})
    started = time.monotonic()
    assert instance.run_launcher.terminate(run.run_id)
    # dagster-docker's terminate would still be waiting on the engine (60 s client timeout).
    assert time.monotonic() - started < 10
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELING
    deadline = time.monotonic() + 10
    while not hanging_engine and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hanging_engine, "the stop never reached the engine"


def test_a_failed_stop_is_reported_on_the_run(instance, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    run = started_run(instance, {DOCKER_CONTAINER_ID_TAG: "0123456789ab"})
    assert instance.run_launcher.terminate(run.run_id)
    deadline = time.monotonic() + 20
    while not any("failed" in m for m in engine_messages(instance, run.run_id)):
        assert time.monotonic() < deadline, engine_messages(instance, run.run_id)
        time.sleep(0.1)
    [message] = [m for m in engine_messages(instance, run.run_id) if "failed" in m]
    assert "Stopping run container 0123456789ab failed" in message


def test_a_run_without_a_container_is_not_reported_canceling(instance):
    run = started_run(instance, {})
    assert not instance.run_launcher.terminate(run.run_id)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    assert any("Unable to get docker container" in m for m in engine_messages(instance, run.run_id))


def test_a_finished_run_is_left_alone(instance):
    run = started_run(instance, {DOCKER_CONTAINER_ID_TAG: "0123456789ab"})
    instance.report_run_canceled(run)
    assert not instance.run_launcher.terminate(run.run_id)


def team_run(instance, team: str, **run_args):
    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    location = GrpcServerCodeLocationOrigin(host=f"{team}-code", port=4000, location_name=team)
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "probe_sleep")
    return create_run_for_test(
        instance,
        job_name="probe_sleep",
        job_code_origin=hostile_origin(),
        remote_job_origin=origin,
        **run_args,
    )


@pytest.fixture
def team_credentials(tmp_path, monkeypatch):
    path = tmp_path / "team-redis.json"
    path.write_text(json.dumps({"bakery": "bakery-secret", "ml": "ml-secret"}))
    monkeypatch.setenv(TEAM_REDIS_CREDENTIALS_ENV, str(path))
    return path


def test_a_run_container_gets_its_own_teams_broker_user_and_no_other(instance, team_credentials):
    env = instance.run_launcher.get_container_context(team_run(instance, "bakery")).env_vars
    assert "DAGSTER_CELERY_BROKER_URL=redis://team_bakery:bakery-secret@redis:6379/0" in env
    assert "DAGSTER_CELERY_BACKEND_URL=redis://team_bakery:bakery-secret@redis:6379/1" in env
    assert not any("ml-secret" in entry for entry in env)


def test_a_run_container_connects_to_postgres_as_its_own_teams_role(
    instance, tmp_path, monkeypatch
):
    path = tmp_path / "team-postgres.json"
    path.write_text(json.dumps({"bakery": "bakery-pg", "ml": "ml-pg"}))
    monkeypatch.setenv(TEAM_POSTGRES_CREDENTIALS_ENV, str(path))
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", "dagster")
    monkeypatch.setenv("DAGSTER_POSTGRES_PASSWORD", "owner-secret")
    context = instance.run_launcher.get_container_context(team_run(instance, "bakery"))
    # The last value of a name is what the container gets (DockerRunLauncher makes a dict).
    env = dict(entry.partition("=")[::2] for entry in context.env_vars if "=" in entry)
    assert env["DAGSTER_POSTGRES_USER"] == "team_bakery"
    assert env["DAGSTER_POSTGRES_PASSWORD"] == "bakery-pg"
    assert env["DAGSTER_WANDB_IO_INDEX_URL"].startswith("postgresql://team_bakery:bakery-pg@")
    assert not any("ml-pg" in entry or "owner-secret" in entry for entry in context.env_vars)


def test_a_location_without_credentials_gets_no_broker_user(instance, team_credentials):
    env = instance.run_launcher.get_container_context(team_run(instance, "platform")).env_vars
    assert not any(entry.startswith("DAGSTER_CELERY_BROKER_URL=") for entry in env)


def test_an_unreadable_credentials_file_names_the_fix(instance, tmp_path, monkeypatch):
    monkeypatch.setenv(TEAM_REDIS_CREDENTIALS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(PlatformConfigError, match="make env"):
        instance.run_launcher.get_container_context(team_run(instance, "bakery"))
