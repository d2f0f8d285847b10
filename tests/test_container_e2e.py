"""The real images and docker-compose.yml, up on a container engine (containerlab in CI)."""

import os
import secrets
import shlex
import subprocess
import sys
import time

import pytest

from devstack.client import PlatformClient
from devstack.stack import free_port
from tests.conftest import wait_for_loaded_locations
from tests.repo import REPO_ROOT, SECRET_VARIABLES, workspace_teams

pytestmark = pytest.mark.container


class ComposeStack:
    def __init__(self, tmp_path) -> None:
        self.name = f"mlp-e2e-{os.getpid()}"
        self.webserver_port = free_port()
        self.flower_port = free_port()
        env_file = tmp_path / "compose.env"
        settings = {
            **{name: secrets.token_hex(16) for name in SECRET_VARIABLES},
            "PLATFORM_NAME": self.name,
            "WEBSERVER_PORT": str(self.webserver_port),
            "FLOWER_PORT": str(self.flower_port),
            "DOCKER_SOCKET": os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"),
        }
        env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.secrets = {settings[name] for name in SECRET_VARIABLES}
        self.compose = ["docker", "compose", "-p", self.name, "--env-file", str(env_file)]

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> str:
        result = subprocess.run(
            [*self.compose, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def wait_healthy(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "scripts/wait_healthy.py",
                "--compose",
                shlex.join(self.compose),
                "--timeout",
                "600",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        print(result.stdout)
        assert result.returncode == 0, result.stdout + result.stderr

    def remove_run_containers(self) -> None:
        subprocess.run(
            [sys.executable, "scripts/remove_run_containers.py"],
            cwd=REPO_ROOT,
            env={**os.environ, "PLATFORM_NAME": self.name},
            check=False,
        )


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory, request):
    stack = ComposeStack(tmp_path_factory.mktemp("compose"))
    build_started = time.monotonic()
    # One service per image, as `make build` does.
    stack.run("build", "init", *(f"{team}-code" for team in workspace_teams()))
    print(f"\nimages built in {time.monotonic() - build_started:.0f}s")
    try:
        up_started = time.monotonic()
        stack.run("up", "-d")
        stack.wait_healthy()
        print(f"all services healthy {time.monotonic() - up_started:.1f}s after `up -d` (prebuilt)")
        yield stack
    finally:
        if request.session.testsfailed:
            print(stack.run("logs", "--tail", "40", check=False)[-20000:])
        stack.remove_run_containers()
        stack.run("down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="module")
def compose_client(compose_stack):
    client = PlatformClient(f"http://127.0.0.1:{compose_stack.webserver_port}")
    wait_for_loaded_locations(client, workspace_teams(), timeout=180)
    return client


def test_each_team_runs_in_its_own_run_container_and_on_its_own_workers(compose_client):
    submitted = {}
    for team in workspace_teams():
        submitted[team] = (compose_client.submit_job(team, "probe_ping"), time.monotonic())
    for team, (run_id, started) in submitted.items():
        status = compose_client.wait_for_run(run_id, timeout=300)
        print(f"{team}: probe_ping {status} {time.monotonic() - started:.1f}s after submit")
        assert status == "SUCCESS"
        tags = {tag["key"]: tag["value"] for tag in compose_client.run(run_id)["tags"]}
        assert tags.get("docker/container_id"), "the run did not get its own container"
        assert tags["dagster/image"].endswith(f"/{team}:latest"), tags["dagster/image"]
        workers = compose_client.step_workers(run_id)
        assert workers and all(worker.startswith(f"{team}@") for worker in workers.values())


def test_team_containers_run_as_a_non_root_user(compose_stack):
    for team in workspace_teams():
        for service in (f"{team}-code", f"{team}-worker"):
            uid = compose_stack.run("exec", "-T", service, "id", "-u").strip()
            assert uid == "1000", f"{service} runs as uid {uid}"


def developer_secrets() -> set[str]:
    """Secrets in the developer's own .env, which the build context must never carry."""
    env_file = REPO_ROOT / ".env"
    if not env_file.exists():
        return set()
    values = set()
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRET_VARIABLES and value:
            values.add(value)
    return values


def test_no_secret_is_baked_into_any_image(compose_stack):
    secrets_to_find = compose_stack.secrets | developer_secrets()
    for image in set(compose_stack.run("config", "--images").split()):
        if image.startswith(("postgres:", "redis:")):
            continue
        history = subprocess.run(
            ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
        ).stdout
        inspected = subprocess.run(
            ["docker", "inspect", image], capture_output=True, text=True, check=True
        ).stdout
        for secret in secrets_to_find:
            assert secret not in history and secret not in inspected, f"{image} holds a secret"
        for name in SECRET_VARIABLES:
            assert f"{name}=" not in inspected, f"{image} sets {name} in its environment"
        env_files = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "find", image, "/opt", "-name", ".env*"],
            capture_output=True,
            text=True,
        ).stdout
        assert env_files.strip() == "", f"{image} contains {env_files}"
