"""Local mode's Reload watcher against a real `dagster code-server start`: a Reload restarts the
team's workers; workers that started after the old server was last seen (a redeploy) are left
alone; a server that stops answering restarts nothing."""

import signal
import sys
from pathlib import Path

import pytest

from devstack import config
from devstack.code_reload import CodeReloadWatcher, server_id
from devstack.health import grpc_serving
from devstack.local_stack import free_port
from devstack.processes import Service, wait_until

DEFINITIONS = """
import dagster as dg

@dg.asset
def mark() -> None:
    pass

defs = dg.Definitions(assets=[mark])
"""

# Starts a real code server (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def service(tmp_path: Path, name: str, argv: list[str], ready=lambda: True) -> Service:
    return Service(
        name=name,
        argv=argv,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        log_path=tmp_path / f"{name}.log",
        ready=ready,
        signal_group=False,
    )


@pytest.fixture
def code_server(tmp_path):
    (tmp_path / "reload_team.py").write_text(DEFINITIONS)
    port = free_port()
    dagster = Path(sys.prefix) / "bin" / "dagster"
    argv = [str(dagster), "code-server", "start", "--host", config.LOCAL_HOST, "--port"]
    server = service(
        tmp_path,
        "reload-code",
        [*argv, str(port), "--module-name", "reload_team"],
        ready=lambda: grpc_serving(port),
    )
    server.env = {**server.env, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    server.start()
    try:
        assert wait_until(server.is_ready, 120), server.log_tail()
        yield server, port
    finally:
        server.stop()


def sleeper(tmp_path: Path, name: str) -> Service:
    worker = service(tmp_path, name, ["sleep", "300"])
    worker.start()
    return worker


def reload(port: int) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    before = server_id(port)
    DagsterGrpcClient(port=port, host=config.LOCAL_HOST).reload_code(timeout=120)
    assert wait_until(lambda: server_id(port) not in (None, before), 120)


def ended_by_sigterm(worker: Service) -> bool:
    return worker.process.wait(10) == -signal.SIGTERM


def test_a_reload_restarts_the_teams_workers_and_spares_those_already_restarted(
    code_server, tmp_path
):
    _server, port = code_server
    step_worker, run_worker = sleeper(tmp_path, "team-worker"), sleeper(tmp_path, "team-runs")
    workers = [step_worker, run_worker]
    watcher = CodeReloadWatcher({"team": port}, lambda team: workers)
    try:
        assert watcher.poll() == [], "the first id seen is no change"
        assert watcher.poll() == [], "the same server again is no change"

        reload(port)
        assert watcher.poll() == ["team-worker", "team-runs"]
        assert ended_by_sigterm(step_worker) and ended_by_sigterm(run_worker)

        # A redeploy: the run worker is restarted with the code server, after the old server
        # was last seen; only the step worker, left running, is restarted by the watcher.
        step_worker, run_worker = sleeper(tmp_path, "team-worker"), sleeper(tmp_path, "team-runs")
        workers[:] = [step_worker, run_worker]
        watcher.poll()
        run_worker.stop()
        run_worker.start()
        reload(port)
        assert watcher.poll() == ["team-worker"]
        assert ended_by_sigterm(step_worker)
        assert run_worker.is_running()
    finally:
        for worker in workers:
            worker.stop()


def test_a_code_server_that_stops_answering_restarts_nothing(code_server, tmp_path):
    server, port = code_server
    worker = sleeper(tmp_path, "team-worker")
    watcher = CodeReloadWatcher({"team": port}, lambda team: [worker])
    try:
        watcher.poll()
        server.stop()
        assert watcher.poll() == []
        assert worker.is_running()
    finally:
        worker.stop()
