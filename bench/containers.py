"""The compose stack with prebuilt images: cold start, idle footprint, and 1-step runs with warm
run workers (the default) and with a container per run (isolation mode, which is how vanilla
dagster-docker starts every run)."""

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench import footprint
from bench.run_timings import RunTiming, summarize, timed_run
from devstack.config import REPO_ROOT, teams
from devstack.graphql_client import PlatformClient
from devstack.local_stack import free_port
from registry import build_order, service_names

TEAM = "bakery"
WARM = "docker-compose.yml"
CONTAINER_RUNS = "docker-compose.yml:docker-compose.container-runs.yml"


def compose_command() -> list[str]:
    """Compose v2 when present, else docker-compose 1.29, as the Makefile chooses."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]


def read_env(env_file: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}


def wait_healthy(compose: list[str], env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "scripts.wait_healthy", "--compose", shlex.join(compose)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def wait_through_the_proxy(client: PlatformClient, timeout: float = 120) -> None:
    """A recreated webserver is healthy a moment before the UI proxy follows it (Bad Gateway)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.locations()
            return
        except requests.HTTPError as error:
            if error.response.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                raise
        time.sleep(1)


def one_step_runs(client: PlatformClient, runs: int) -> dict:
    wait_through_the_proxy(client)
    client.wait_for_locations(teams(), timeout=180)
    timed_run(client, TEAM, "probe_ping")  # warm-up, not recorded
    timings: list[RunTiming] = [timed_run(client, TEAM, "probe_ping") for _ in range(runs)]
    return summarize(timings)


def launchers_as(compose: list[str], compose_file: str) -> dict[str, str]:
    """Recreate the daemon and the webserver as .env's COMPOSE_FILE would have them."""
    env = {**os.environ, "COMPOSE_FILE": compose_file}
    subprocess.run(
        [*compose, "up", "-d", "--no-deps", "daemon", "webserver"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    wait_healthy(compose, env)
    return env


def write_env_file(env_file: Path, keys_dir: str, name: str) -> dict[str, str]:
    """The stack's own .env, completed by make_env; returns the settings it was seeded with."""
    settings = {
        # Its own keys and users: the developer's keys/ and .env are left alone.
        "KEYS_DIR": keys_dir,
        "PLATFORM_NAME": name,
        "WEBSERVER_PORT": str(free_port()),
        "FLOWER_PORT": str(free_port()),
        "DOCKER_SOCKET": os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"),
    }
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    # make_env adds every secret the file lacks, as `make env` does for a new .env.
    subprocess.run(
        [sys.executable, "-m", "scripts.make_env", "--env-file", str(env_file)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    return settings


def build_images(compose: list[str], env: dict[str, str]) -> None:
    # As `make build`: one image at a time, the platform's first.
    for service in build_order():
        subprocess.run(
            [*compose, "build", service],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )


def measure_stack(
    compose: list[str], env: dict[str, str], client: PlatformClient, runs: int
) -> tuple[float, dict[str, float], dict]:
    """Seconds from `up` to all healthy, idle PSS per service, and 1-step runs with warm run
    workers, then with a container per run."""
    started = time.monotonic()
    subprocess.run([*compose, "up", "-d"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    wait_healthy(compose, env)
    seconds = round(time.monotonic() - started, 1)
    # Healthy is not yet idle: let start-up work finish before the footprint is read.
    time.sleep(10)
    pss = footprint.container_footprint(compose)
    one_step = {"warm": one_step_runs(client, runs)}
    launchers_as(compose, CONTAINER_RUNS)
    one_step["container_per_run"] = one_step_runs(client, runs)
    return seconds, pss, one_step


def tear_down(compose: list[str], env: dict[str, str], name: str) -> None:
    # Run containers first: compose does not know them, and `down -v` cannot remove a network
    # or volume they still use.
    subprocess.run(
        [sys.executable, "-m", "scripts.remove_run_containers"],
        cwd=REPO_ROOT,
        env={**os.environ, "PLATFORM_NAME": name},
        capture_output=True,
    )
    subprocess.run([*compose, "down", "-v"], cwd=REPO_ROOT, env=env, capture_output=True)


def compose_benchmark(runs: int) -> dict:
    name = f"mlp-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as scratch:
        env_file = Path(scratch) / "bench.env"
        settings = write_env_file(env_file, scratch, name)
        password = read_env(env_file)["UI_PASSWORD"]
        compose = [*compose_command(), "-p", name, "--env-file", str(env_file)]
        warm_env = {**os.environ, "COMPOSE_FILE": WARM}
        build_images(compose, warm_env)
        client = PlatformClient(
            f"http://127.0.0.1:{settings['WEBSERVER_PORT']}", login=("admin", password)
        )
        try:
            seconds, pss, one_step = measure_stack(compose, warm_env, client, runs)
        finally:
            tear_down(compose, warm_env, name)
    team_pss = {
        team: round(sum(pss.get(name, 0) for name in service_names(team)), 1) for team in teams()
    }
    return {
        "seconds_to_healthy": seconds,
        "idle_pss_mib": pss,
        "team_idle_pss_mib": team_pss,
        "one_step": one_step,
    }
