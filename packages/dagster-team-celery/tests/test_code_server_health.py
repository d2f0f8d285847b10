"""The code servers' health check, against a real `dagster api grpc` server."""

import socket
import subprocess
import sys
import time

import pytest

from dagster_team_celery.deploy import code_server_health

DEFINITIONS = """
import dagster as dg

@dg.asset
def mark() -> None:
    pass

defs = dg.Definitions(assets=[mark])
"""

# Starts a real code server (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_serving_code_server_is_healthy_and_a_gone_one_is_named_unreachable(tmp_path, capsys):
    (tmp_path / "health_defs.py").write_text(DEFINITIONS)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "-m", "health_defs", "--port", str(port)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not code_server_health.is_serving("127.0.0.1", port):
            assert server.poll() is None, "the code server exited"
            assert time.monotonic() < deadline, "the code server never served"
            time.sleep(0.5)
        assert code_server_health.main(["--port", str(port)]) == 0
        assert f"code server 127.0.0.1:{port}: SERVING" in capsys.readouterr().out
        # As a team's server is asked: at this host's address toward a peer (here, itself).
        assert code_server_health.main(["--toward", "localhost", "--port", str(port)]) == 0
        assert f"code server 127.0.0.1:{port}: SERVING" in capsys.readouterr().out
    finally:
        server.kill()  # gone at once: a gRPC server under load can take 30 s to drain
        server.wait(30)
    assert code_server_health.main(["--port", str(port), "--timeout", "1"]) == 1
    assert "unreachable (UNAVAILABLE)" in capsys.readouterr().out


def test_the_check_does_not_import_dagster():
    # Its whole point: a check every 10 s must not pay Dagster's import (2 s of CPU).
    probe = (
        "import sys, dagster_team_celery.deploy.code_server_health; print('dagster' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
