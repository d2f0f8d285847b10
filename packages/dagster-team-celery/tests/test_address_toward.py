"""`dagster-platform-entrypoint --address-toward NAME`: a team's code server listens only at its
address toward the code gateway (docker-compose.yml, x-code-gateway)."""

import subprocess
import sys

import pytest

from dagster_team_celery.deploy.service_entrypoint import own_address_toward


def test_the_address_toward_a_peer_is_the_source_address_the_kernel_picks():
    assert own_address_toward("localhost") == "127.0.0.1"


def test_a_peer_that_never_resolves_is_named_with_the_fix():
    with pytest.raises(SystemExit) as stopped:
        own_address_toward("no-such-gateway.invalid", timeout_seconds=0)
    message = str(stopped.value.code)
    assert "'no-such-gateway.invalid' does not resolve" in message
    assert "attach this service to a network" in message


def test_the_command_gets_the_address_where_it_says_address():
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster_team_celery.deploy.service_entrypoint",
            "--address-toward",
            "localhost",
            "--",
            "echo",
            "--host",
            "{address}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout == "--host 127.0.0.1\n"
