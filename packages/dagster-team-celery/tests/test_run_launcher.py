"""The container-mode launcher's Terminate: answered from the database, the engine work later.

dagster-docker's own ``terminate`` talks to the engine three times inside the webserver's
GraphQL request. These tests point the launcher at engines that hang or are gone, which is what
a loaded or dead engine looks like to the request.
"""

import socket
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

LAUNCHER = {"module": "dagster_team_celery.run_launcher", "class": "TeamDockerRunLauncher"}


@pytest.fixture
def instance():
    with instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


def started_run(instance, tags: dict[str, str]):
    return create_run_for_test(
        instance, job_name="probe_sleep", status=DagsterRunStatus.STARTED, tags=tags
    )


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
