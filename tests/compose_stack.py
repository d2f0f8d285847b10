"""The compose stack the container suites run against: the real images and docker-compose.yml,
up on a container engine (containerlab in CI), one stack per test module (module-scoped
fixtures), so two modules' suites can run at once in two pytest sessions."""

import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import requests

import registry
from devstack import config
from devstack.graphql_client import PlatformClient
from devstack.local_stack import free_port
from scripts import ui_login
from tests.repo import (
    HOST_SECRETS,
    REDIS_PASSWORD_PREFIX,
    SHARED_SECRETS,
    SIGNING_KEY_PREFIX,
    copy_checkout,
)
from tests.stack_helpers import wait_for_loaded_locations

RUN_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\) in warm run worker (\S+)\.")
# .env's one line that gives every run a container of its own (docker-compose.container-runs.yml).
CONTAINER_RUNS = "docker-compose.yml:docker-compose.container-runs.yml"

# Scaffolded by `make new-team`'s command into the running stack's checkout, so the container
# stack proves a new team runs green without hand edits and without restarting anything else.
NEW_TEAM = "carrots"
# A team kept in its own repository: built from a folder outside code_locations/, deployed by
# image reference alone.
EXTERNAL_TEAM = "forecast"


def docker_inspect(target: str, template: str | None = None) -> str:
    """`docker inspect` of a container or image: its JSON, or ``template`` filled in."""
    options = ["--format", template] if template else []
    return subprocess.run(
        ["docker", "inspect", *options, target], capture_output=True, text=True, check=True
    ).stdout.strip()


class ComposeStack:
    def __init__(self, checkout, tmp_path) -> None:
        self.checkout = checkout
        self.teams = config.teams(checkout)
        self.env_file = env_file = tmp_path / "compose.env"
        self.name = f"mlp-e2e-{os.getpid()}"
        self.webserver_port = free_port()
        self.flower_port = free_port()
        settings = {
            # Team keys are added by `make env`'s script, which up_like_make_up runs.
            **{name: secrets.token_hex(16) for name in (*SHARED_SECRETS, *HOST_SECRETS)},
            "PLATFORM_NAME": self.name,
            "WEBSERVER_PORT": str(self.webserver_port),
            "FLOWER_PORT": str(self.flower_port),
            "DOCKER_SOCKET": os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"),
        }
        env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.flower_password = settings["FLOWER_PASSWORD"]
        self.flower_url = f"http://127.0.0.1:{self.flower_port}"
        self.compose = ["docker", "compose", "-p", self.name, "--env-file", str(env_file)]
        # Through the UI's proxy, the only published way to the webserver.
        self.webserver_url = f"http://127.0.0.1:{self.webserver_port}"
        self.ui_login = (ui_login.DEFAULT_USER, settings["UI_PASSWORD"])
        # How the deploy scripts find the UI's login: the environment, before .env.
        self.script_env = {**os.environ, "UI_PASSWORD": settings["UI_PASSWORD"]}

    def run(
        self, *args: str, check: bool = True, timeout: float = 1800, env: dict | None = None
    ) -> str:
        result = subprocess.run(
            [*self.compose, *args],
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def wait_healthy(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.wait_healthy",
                "--compose",
                shlex.join(self.compose),
                "--timeout",
                "600",
            ],
            cwd=self.checkout,
            capture_output=True,
            text=True,
        )
        print(result.stdout)
        assert result.returncode == 0, result.stdout + result.stderr

    def wait_for_ui_through_the_proxy(self, timeout: float = 120) -> None:
        """A recreated webserver is healthy before the proxy follows it to its new address."""
        deadline = time.monotonic() + timeout
        while True:
            response = requests.get(
                f"{self.webserver_url}/server_info", auth=self.ui_login, timeout=30
            )
            if response.ok:
                return
            assert time.monotonic() < deadline, f"still {response.status_code} through the proxy"
            time.sleep(1)

    def remove_leftovers(self) -> None:
        """What `down` left of this project, and whole projects of suites that died before
        their teardown (`mlp-e2e-<pid>` of a pid gone): left running, each would hold a stack's
        worth of containers, and their health checks' CPU, into every later run."""
        listed = subprocess.run(
            ["docker", "ps", "-a", "--format", '{{.ID}} {{.Label "com.docker.compose.project"}}'],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        doomed = []
        for line in filter(None, listed):
            container, _, project = line.partition(" ")
            pid = project.removeprefix("mlp-e2e-")
            gone = pid.isdigit() and not psutil.pid_exists(int(pid))
            if project == self.name or (project != pid and gone):
                doomed.append(container)
        if doomed:
            print(f"removing {len(doomed)} containers left by this or a dead suite")
            subprocess.run(["docker", "rm", "-f", *doomed], capture_output=True, check=False)

    def remove_run_containers(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "scripts.remove_run_containers"],
            cwd=self.checkout,
            env={**os.environ, "PLATFORM_NAME": self.name},
            check=False,
        )

    def services(self) -> list[str]:
        return self.run("config", "--services").split()

    def container_ids(self, service: str) -> list[str]:
        return self.run("ps", "-q", service).split()

    def all_container_ids(self) -> dict[str, list[str]]:
        return {service: self.container_ids(service) for service in self.services()}

    def image_ids(self) -> dict[str, str]:
        """Each service's image reference -> its current image ID, to tell why compose
        recreated a container (a changed image, or a changed configuration)."""
        images = set(self.run("config", "--images").split())
        return {
            image: subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", image],
                capture_output=True,
                text=True,
            ).stdout.strip()[:19]
            for image in sorted(images)
        }

    def script(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """A deploy script or registry command, run in the stack's checkout as make runs it."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.checkout,
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def redeploy(self, team: str) -> subprocess.CompletedProcess:
        """`make redeploy TEAM=<team>` against this stack."""
        return self.script(
            "-m",
            "scripts.redeploy",
            "--compose",
            shlex.join(self.compose),
            "--webserver",
            self.webserver_url,
            team,
        )

    @property
    def secrets(self) -> set[str]:
        return secret_values(self.env_file)

    def build_like_make_build(self) -> None:
        """One image at a time, the platform's first (the Makefile's build target says why)."""
        for service in registry.build_order(self.checkout):
            self.run("build", service)

    def make_env(self) -> None:
        """`make env` for this stack's env file: a key for each team, the trust file."""
        made = self.script("-m", "scripts.make_env", "--env-file", str(self.env_file))
        assert made.returncode == 0, made.stdout + made.stderr

    def up_like_make_up(self) -> None:
        """What `make up` does after `make generate`: env (a new team's key, the trust file),
        build, up, wait, reload the workspace."""
        self.make_env()
        self.build_like_make_build()
        # A running Redis rereads its users, so a new team's services can log in.
        self.run("exec", "-T", "redis", "redis-cli", "ACL", "LOAD", check=False)
        up = subprocess.run(
            [*self.compose, "up", "-d", "--remove-orphans"],
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=900,
        )
        # What compose did to each container (Running, Recreate, Create, Removed).
        print(up.stdout[-3000:] + up.stderr[-3000:])
        assert up.returncode == 0, up.stderr[-4000:]
        result = self.script(
            "-m",
            "scripts.wait_healthy",
            "--compose",
            shlex.join(self.compose),
            "--timeout",
            "600",
            "--reload-workspace",
            "--webserver",
            self.webserver_url,
        )
        print(result.stdout[-1500:])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def running_compose_stack(tmp_path_factory, request) -> Iterator[ComposeStack]:
    """The `compose_stack` fixture of tests/conftest.py: one stack per test module."""
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    stack = ComposeStack(checkout, tmp_path_factory.mktemp("compose"))
    stack.remove_leftovers()
    stack.make_env()
    build_started = time.monotonic()
    # One service per image, as `make build` does.
    stack.build_like_make_build()
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
        stack.remove_leftovers()


def loaded_compose_client(stack: ComposeStack) -> PlatformClient:
    client = PlatformClient(stack.webserver_url, login=stack.ui_login)
    wait_for_loaded_locations(client, stack.teams, timeout=180)
    return client


def secret_values(env_file: Path) -> set[str]:
    """The shared secrets, and every team's signing key and Redis password, in an env file."""
    if not env_file.exists():
        return set()
    values = set()
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        per_team = name.startswith((SIGNING_KEY_PREFIX, REDIS_PASSWORD_PREFIX))
        if (name in SHARED_SECRETS or name in HOST_SECRETS or per_team) and value:
            values.add(value)
    return values


def team_services(team: str) -> set[str]:
    return set(registry.service_names(team))


def assert_sample_job_runs_on_its_team(client: PlatformClient, team: str) -> None:
    run_id = client.submit_job(team, "sample_job")
    assert client.wait_for_run(run_id, timeout=300) == "SUCCESS"
    workers = client.step_workers(run_id)
    assert set(workers) == {"raw_numbers", "squared_numbers"}
    assert all(worker.startswith(f"{team}@") for worker in workers.values())


def build_external_team_image(compose_stack: ComposeStack, tag: str) -> str:
    image = f"{compose_stack.name}-external/{EXTERNAL_TEAM}:{tag}"
    subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            "docker/team.Dockerfile",
            "--build-arg",
            f"TEAM={EXTERNAL_TEAM}",
            "--build-arg",
            f"TEAM_DIR=external/{EXTERNAL_TEAM}",
            "-t",
            image,
            ".",
        ],
        cwd=compose_stack.checkout,
        check=True,
        capture_output=True,
        timeout=1200,
    )
    return image
