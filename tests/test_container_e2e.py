"""The real images and docker-compose.yml, up on a container engine (containerlab in CI)."""

import base64
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests

import registry
from dagster_team_celery.probes import FAN_OUT_WIDTH, fan_out_run_config
from devstack import config
from devstack.graphql_client import PlatformClient
from devstack.local_stack import free_port
from devstack.roles_webserver import Caller, refusal
from registry.scaffold import copy_template
from scripts import ui_login
from tests import object_store_attacks, shared_layer_attacks
from tests.faults.conftest import failure_messages
from tests.postgres_attacks import aliases_digest_query, assert_confined, probe, run_state_query
from tests.repo import (
    HOST_SECRETS,
    POSTGRES_PASSWORD_PREFIX,
    REDIS_PASSWORD_PREFIX,
    REPO_ROOT,
    SHARED_SECRETS,
    SIGNING_KEY_PREFIX,
    copy_checkout,
    env_settings,
)
from tests.resume import (
    WorkerService,
    check_killed_after_the_last_step,
    check_killed_before_any_step,
    check_killed_midway,
    stop_consuming_source,
)
from tests.stack_helpers import run_browser_suite, wait_for_loaded_locations
from tests.terminate import (
    SLEEPING,
    assert_canceled_promptly,
    sleep_config,
    step_successes,
    terminate,
    wait_for_event,
    wait_for_successes,
)

pytestmark = pytest.mark.container

RUN_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\) in warm run worker (\S+)\.")
# .env's one line that gives every run a container of its own (docker-compose.container-runs.yml).
CONTAINER_RUNS = "docker-compose.yml:docker-compose.container-runs.yml"

# Scaffolded by `make new-team`'s command into the running stack's checkout, so the container
# stack proves a new team runs green without hand edits and without restarting anything else.
NEW_TEAM = "carrots"
# A team kept in its own repository: built from a folder outside code_locations/, deployed by
# image reference alone.
EXTERNAL_TEAM = "forecast"


# Logins of people (`make user`), beside the platform tools' admin login: a member of the
# bakery and a viewer.
PEOPLE = {"alice": "bakery", "vera": ""}
PEOPLE_PASSWORD = "a-persons-password"


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

    def psql(self, query: str) -> str:
        """One query's result, as the platform's owner in the postgres container (its password
        from the container's own environment, not from any command line)."""
        login = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER"'
        shell = f'{login} -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -tAc "$0"'
        return self.run("exec", "-T", "postgres", "sh", "-c", shell, query).strip()

    def wait_healthy(self, *options: str) -> None:
        """`scripts.wait_healthy` as `make up` runs it, with any extra options (a reload)."""
        result = self.script(
            "-m",
            "scripts.wait_healthy",
            "--compose",
            shlex.join(self.compose),
            "--timeout",
            "600",
            *options,
        )
        print(result.stdout[-3000:])
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

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
        self.wait_healthy("--reload-workspace", "--webserver", self.webserver_url)


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory, request):
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    stack = ComposeStack(checkout, tmp_path_factory.mktemp("compose"))
    stack.remove_leftovers()
    stack.make_env()
    for name, teams in PEOPLE.items():  # `make user`: people with their own logins and roles
        made = stack.script("-m", "scripts.make_user", name, "--password", PEOPLE_PASSWORD,
                            *(["--teams", teams] if teams else []))  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
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


@pytest.fixture(scope="module")
def compose_client(compose_stack):
    client = PlatformClient(compose_stack.webserver_url, login=compose_stack.ui_login)
    wait_for_loaded_locations(client, compose_stack.teams, timeout=180)
    return client


def test_each_team_runs_in_its_own_warm_run_worker_and_on_its_own_workers(
    compose_stack, compose_client
):
    submitted = {}
    for team in compose_stack.teams:
        submitted[team] = (compose_client.submit_job(team, "probe_ping"), time.monotonic())
    for team, (run_id, started) in submitted.items():
        status = compose_client.wait_for_run(run_id, timeout=300)
        print(f"{team}: probe_ping {status} {time.monotonic() - started:.1f}s after submit")
        assert status == "SUCCESS"
        run_worker = wait_for_event(compose_client, run_id, RUN_PROCESS).group(2)
        assert run_worker.startswith(f"{team}-runs@"), run_worker
        tags = {tag["key"]: tag["value"] for tag in compose_client.run(run_id)["tags"]}
        assert "docker/container_id" not in tags, "a warm run got a container"
        workers = compose_client.step_workers(run_id)
        assert workers and all(worker.startswith(f"{team}@") for worker in workers.values())


def test_the_platform_needs_no_root_and_no_engine_socket(compose_stack):
    for service in compose_stack.services():
        if service == "init":
            continue  # exited after migrating
        for container in compose_stack.container_ids(service):
            inspected = json.loads(docker_inspect(container))[0]
            mounts = [mount.get("Destination", "") for mount in inspected["Mounts"]]
            assert not any("docker.sock" in mount for mount in mounts), f"{service}: {mounts}"
        if service in ("webserver", "daemon"):
            uid = compose_stack.run("exec", "-T", service, "id", "-u").strip()
            assert uid == "1000", f"{service} runs as uid {uid}"


def compose_worker_service(stack: ComposeStack, team: str) -> WorkerService:
    """The team's worker container (its step worker, its run worker and so the run's process)
    and the daemon's, acted on as the resume scenarios need (tests/resume.py)."""
    (container,) = stack.container_ids(f"{team}-worker")
    (daemon,) = stack.container_ids("daemon")

    def kill() -> None:
        subprocess.run(["docker", "kill", "--signal", "KILL", container], check=True)
        # What the restart policy does for a container that died (a `docker kill` counts as a
        # stop by hand). The same container: `up --no-deps` would recreate it, and then every
        # later `up` too (compose 2.26 hashes the service without its depends_on;
        # docker/compose#12069).
        subprocess.run(["docker", "start", container], check=True, capture_output=True)

    def in_container(*command: str) -> None:
        done = subprocess.run(
            ["docker", "exec", container, *command], capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command[:2]} in {team}-worker: {done.stderr[-2000:]}"

    return WorkerService(
        kill=kill,
        stop_consuming_steps=lambda: in_container("python", "-c", stop_consuming_source(team)),
        freeze_daemon=lambda: subprocess.run(["docker", "pause", daemon], check=True),
        thaw_daemon=lambda: subprocess.run(["docker", "unpause", daemon], check=True),
        freeze_run_process=lambda pid: in_container("sh", "-c", f"kill -STOP {pid}"),
    )


@pytest.fixture
def bakery_worker(compose_stack):
    yield compose_worker_service(compose_stack, "bakery")
    compose_stack.wait_healthy()


def test_a_killed_worker_container_before_any_step_resumes_the_run(compose_client, bakery_worker):
    check_killed_before_any_step(compose_client, "bakery", bakery_worker)


def test_a_killed_worker_container_midway_resumes_the_run(compose_client, bakery_worker):
    check_killed_midway(compose_client, "bakery", bakery_worker)


def test_a_killed_worker_container_after_the_last_step_ends_the_run_success(
    compose_client, bakery_worker
):
    check_killed_after_the_last_step(compose_client, "bakery", bakery_worker)


def team_services(team: str) -> set[str]:
    return set(registry.service_names(team))


def assert_sample_job_runs_on_its_team(client: PlatformClient, team: str) -> None:
    run_id = client.submit_job(team, "sample_job")
    assert client.wait_for_run(run_id, timeout=300) == "SUCCESS"
    workers = client.step_workers(run_id)
    assert set(workers) == {"raw_numbers", "squared_numbers"}
    assert all(worker.startswith(f"{team}@") for worker in workers.values())


def test_adding_and_removing_a_team_recreates_no_other_container(compose_stack, compose_client):
    before = compose_stack.all_container_ids()
    images_before = compose_stack.image_ids()
    started = time.monotonic()
    scaffolded = compose_stack.script("-m", "registry", "new", "--no-sync", NEW_TEAM)
    assert scaffolded.returncode == 0, scaffolded.stderr
    scaffold_seconds = time.monotonic() - started
    compose_stack.up_like_make_up()
    up_seconds = time.monotonic() - started
    assert_sample_job_runs_on_its_team(compose_client, NEW_TEAM)
    green_seconds = time.monotonic() - started

    after = compose_stack.all_container_ids()
    print(
        f"\nnew team: scaffolded {scaffold_seconds:.1f}s, its image built and services healthy "
        f"{up_seconds:.1f}s, sample_job SUCCESS {green_seconds:.1f}s after `make new-team`"
    )
    assert set(after) - set(before) == team_services(NEW_TEAM)
    # The code gateway joins the new team's code network; it is the one service a team changes.
    recreated = [
        service
        for service in before
        if before[service] != after[service] and service != "code-gateway"
    ]
    images_after = compose_stack.image_ids()
    changed_images = {
        image: (images_before[image], images_after[image])
        for image in images_before
        if images_before[image] != images_after.get(image)
    }
    assert recreated == [], f"adding a team recreated {recreated}; images changed: {changed_images}"
    assert team_role_login(compose_stack, NEW_TEAM) == "t"

    removed = compose_stack.script("-m", "registry", "remove", NEW_TEAM)
    assert removed.returncode == 0, removed.stderr
    compose_stack.up_like_make_up()
    after_removal = compose_stack.all_container_ids()
    assert {s: ids for s, ids in after_removal.items() if s != "code-gateway"} == {
        s: ids for s, ids in before.items() if s != "code-gateway"
    }
    assert NEW_TEAM not in compose_client.locations()
    # Its rows stay, so its role does too; but a leftover container or a copied password of a
    # removed team logs in no more (init's roles script, run again by `up`).
    assert team_role_login(compose_stack, NEW_TEAM) == "f"


def team_role_login(compose_stack: ComposeStack, team: str) -> str:
    """Whether the team's Postgres role may log in ("t"/"f"), as the owner sees it."""
    return compose_stack.psql(f"SELECT rolcanlogin FROM pg_roles WHERE rolname = 'team_{team}'")


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


def test_a_team_from_its_own_repository_deploys_by_image_and_redeploys_a_new_tag(
    compose_stack, compose_client
):
    # The team's repository: the template, kept outside code_locations/, built into an image.
    source = compose_stack.checkout / "external" / EXTERNAL_TEAM
    copy_template(EXTERNAL_TEAM, compose_stack.checkout)
    source.parent.mkdir(parents=True, exist_ok=True)
    (compose_stack.checkout / "code_locations" / EXTERNAL_TEAM).rename(source)
    subprocess.run(["uv", "lock", "--quiet"], cwd=source, check=True)
    first = build_external_team_image(compose_stack, "1")
    entry = compose_stack.checkout / "code_locations" / EXTERNAL_TEAM
    entry.mkdir()
    (entry / "team.toml").write_text(f'image = "{first}"\n')
    generated = compose_stack.script("-m", "registry", "generate")
    assert generated.returncode == 0, generated.stderr
    compose_stack.make_env()  # the new team's signing key, before compose reads the file
    before = compose_stack.all_container_ids()
    compose_stack.up_like_make_up()
    assert_sample_job_runs_on_its_team(compose_client, EXTERNAL_TEAM)

    # A new version in the team's repository (a second job), a new tag, no rebuild here.
    assets = source / "src" / EXTERNAL_TEAM / "defs" / "assets.py"
    assets.write_text(
        assets.read_text() + '\nsample_job_v2 = dg.define_asset_job("sample_job_v2", "*")\n'
    )
    second = build_external_team_image(compose_stack, "2")
    running = compose_stack.all_container_ids()
    started = time.monotonic()
    moved = compose_stack.script("-m", "registry", "set-image", EXTERNAL_TEAM, second)
    assert moved.returncode == 0, moved.stderr
    redeployed = compose_stack.redeploy(EXTERNAL_TEAM)
    print(f"\nredeploy by image: {time.monotonic() - started:.1f}s: {redeployed.stdout[-200:]}")
    assert redeployed.returncode == 0, redeployed.stdout[-3000:] + redeployed.stderr[-3000:]
    assert " build " not in redeployed.stdout
    after = compose_stack.all_container_ids()
    changed = {service for service in running if running[service] != after[service]}
    assert changed == team_services(EXTERNAL_TEAM)
    image = compose_stack.run("config", "--images").split()
    assert second in image and first not in image

    run_id = compose_client.submit_job(EXTERNAL_TEAM, "sample_job_v2")
    assert compose_client.wait_for_run(run_id, timeout=300) == "SUCCESS"
    # The run executed in the team's warm run worker, recreated from the new image.
    run_worker = wait_for_event(compose_client, run_id, RUN_PROCESS, timeout=30).group(2)
    (container,) = compose_stack.container_ids(f"{EXTERNAL_TEAM}-worker")
    hostname, image_id = docker_inspect(container, "{{.Config.Hostname}} {{.Image}}").split()
    assert run_worker.endswith(f"@{hostname}"), (run_worker, hostname)
    # By ID: the engine may name the image with its registry (podman: docker.io/<second>).
    assert image_id == docker_inspect(second, "{{.Id}}"), "the run did not start from the new image"
    # `before` was read after the manifest was registered: the team's services were named
    # but had no container yet.
    started_since = {service for service in after if after[service] and not before.get(service)}
    assert started_since == team_services(EXTERNAL_TEAM)


def test_the_browser_suite_passes_against_the_container_stack(compose_stack, compose_client):
    """tests/ui, in Chromium, against the containers: code locations, cross-team lineage, a
    materialization from the UI in its own run container, Flower behind its login, and what a
    bakery member and a viewer, signed in with their own logins, may click."""
    run_browser_suite(
        "containers",
        compose_stack.webserver_url,
        compose_stack.ui_login[1],
        compose_stack.flower_url,
        compose_stack.flower_password,
        PEOPLE_PASSWORD,
    )


def test_a_redeploy_drains_the_teams_run_in_flight_and_leaves_another_teams_untouched(
    compose_stack, compose_client
):
    # Built first, so the redeploy's own build is a cache hit and it stops the old containers
    # while the bakery's run is still sleeping.
    compose_stack.run("build", "bakery-code")
    busy_run = compose_client.submit_job("ml", "probe_sleep", run_config=sleep_config(20))
    draining = compose_client.submit_job("bakery", "probe_sleep", run_config=sleep_config(30))
    old_run_worker = wait_for_event(compose_client, draining, RUN_PROCESS).group(2)
    wait_for_event(compose_client, draining, SLEEPING)
    # The bakery's real pipeline, in flight too while its workers are replaced.
    pipeline = compose_client.submit_job("bakery", "cake_production_job")
    deadline = time.monotonic() + 180
    while compose_client.run(busy_run)["status"] != "STARTED":
        assert time.monotonic() < deadline, "the ml run never started"
        time.sleep(1)
    before = {service: compose_stack.container_ids(service) for service in compose_stack.services()}

    started = time.monotonic()
    result = compose_stack.redeploy("bakery")
    print(f"\nredeploy took {time.monotonic() - started:.0f}s: {result.stdout[-300:]}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    after = {service: compose_stack.container_ids(service) for service in compose_stack.services()}
    changed = {service for service in before if before[service] != after[service]}
    assert changed == team_services("bakery")
    assert compose_client.wait_for_run(busy_run, timeout=300) == "SUCCESS"
    # Stopping the old run worker waited for its run, which finished on the old container.
    assert compose_client.wait_for_run(draining, timeout=300) == "SUCCESS"
    # Drained, or (launched after the old worker stopped taking runs) run by the new one.
    assert compose_client.wait_for_run(pipeline, timeout=300) == "SUCCESS"
    assert compose_client.locations()["bakery"].healthy
    again = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(again, timeout=300) == "SUCCESS"
    new_run_worker = wait_for_event(compose_client, again, RUN_PROCESS).group(2)
    assert new_run_worker != old_run_worker
    # A later `make up` finds the redeployed containers as it would have made them.
    compose_stack.run("up", "-d", "--remove-orphans")
    assert compose_stack.all_container_ids() == after


def test_team_containers_run_as_a_non_root_user(compose_stack):
    for team in compose_stack.teams:
        for service in sorted(team_services(team)):
            uid = compose_stack.run("exec", "-T", service, "id", "-u").strip()
            assert uid == "1000", f"{service} runs as uid {uid}"


def secret_values(env_file: Path) -> set[str]:
    """The shared secrets, and every team's signing key and Redis password, in an env file."""
    if not env_file.exists():
        return set()
    values = set()
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        per_team = name.startswith(
            (SIGNING_KEY_PREFIX, REDIS_PASSWORD_PREFIX, POSTGRES_PASSWORD_PREFIX)
        )
        if (name in SHARED_SECRETS or name in HOST_SECRETS or per_team) and value:
            values.add(value)
    return values


def developer_secrets() -> set[str]:
    """Secrets in the developer's own .env, which the build context must never carry."""
    return secret_values(REPO_ROOT / ".env")


def per_team_secrets(settings: dict[str, str], prefix: str) -> dict[str, str]:
    """Team name -> value of each ``<prefix><TEAM>`` setting."""
    return {
        name.removeprefix(prefix).lower(): value
        for name, value in settings.items()
        if name.startswith(prefix)
    }


def test_each_team_container_holds_its_own_signing_key_and_no_other(compose_stack):
    keys = per_team_secrets(env_settings(compose_stack.env_file), SIGNING_KEY_PREFIX)
    # Every registered team, one deployed from its own repository by an earlier test included.
    teams = [team.name for team in registry.teams(compose_stack.checkout)]
    assert set(teams) <= set(keys)
    for service in compose_stack.services():
        team = next((t for t in teams if service.startswith(f"{t}-")), None)
        for container in compose_stack.container_ids(service):
            environment = json.loads(docker_inspect(container))[0]["Config"]["Env"] or []
            held = {
                team_name for team_name, key in keys.items() if any(key in e for e in environment)
            }
            assert held == ({team} if team else set()), f"{service} holds the keys of {held}"


# Run in ml's worker with ml's own broker credentials, against the bakery's keys.
ML_AGAINST_THE_BAKERY = """
import os, redis
from dagster_team_celery.settings import key_prefix
broker = redis.Redis.from_url(os.environ["DAGSTER_CELERY_BROKER_URL"])
results = redis.Redis.from_url(os.environ["DAGSTER_CELERY_BACKEND_URL"])
bakery = key_prefix("bakery")
attacks = {
    "push": lambda: broker.lpush(bakery + "bakery", b"x"),
    "read results": lambda: results.get(bakery + "celery-task-meta-0"),
    "delete results": lambda: results.delete(bakery + "celery-task-meta-0"),
    "revoke": lambda: broker.publish(bakery + "/0.celery.pidbox", b"x"),
    "scan": lambda: broker.scan(0),
}
for name, attack in attacks.items():
    try:
        attack()
        print("ALLOWED", name)
    except redis.exceptions.NoPermissionError:
        print("refused", name)
"""


def test_the_ml_containers_redis_user_cannot_reach_the_bakerys_keys(compose_stack):
    attempt = in_worker(compose_stack, "ml", ML_AGAINST_THE_BAKERY)
    assert attempt.returncode == 0, attempt.stderr
    assert "ALLOWED" not in attempt.stdout, attempt.stdout
    assert attempt.stdout.count("refused") == 5, attempt.stdout


def test_each_team_container_holds_its_own_redis_password_and_no_other(compose_stack):
    settings = env_settings(compose_stack.env_file)
    passwords = per_team_secrets(settings, REDIS_PASSWORD_PREFIX)
    operator = settings["REDIS_PASSWORD"]
    for team in compose_stack.teams:
        for service in sorted(team_services(team)):
            for container in compose_stack.container_ids(service):
                environment = " ".join(
                    json.loads(docker_inspect(container))[0]["Config"]["Env"] or []
                )
                assert f"team_{team}:{passwords[team]}@" in environment, service
                others = [p for other, p in passwords.items() if other != team]
                assert not any(p in environment for p in others), f"{service}: another's"
                assert operator not in environment, f"{service} holds the operator's password"


def test_each_team_container_holds_its_own_postgres_role_and_not_the_platforms(compose_stack):
    settings = env_settings(compose_stack.env_file)
    passwords = per_team_secrets(settings, POSTGRES_PASSWORD_PREFIX)
    for team in compose_stack.teams:
        for service in sorted(team_services(team)):
            for container in compose_stack.container_ids(service):
                environment = json.loads(docker_inspect(container))[0]["Config"]["Env"] or []
                assert f"DAGSTER_POSTGRES_USER=team_{team}" in environment, service
                assert f"DAGSTER_POSTGRES_PASSWORD={passwords[team]}" in environment, service
                held = " ".join(environment)
                assert f"postgresql://team_{team}:{passwords[team]}@" in held, "its W&B index"
                others = [p for other, p in passwords.items() if other != team]
                assert not any(p in held for p in others), f"{service}: another team's"
                assert settings["POSTGRES_PASSWORD"] not in held, f"{service}: the platform's"


def test_the_ml_containers_postgres_role_cannot_harm_the_bakery(compose_stack, compose_client):
    """From ml's worker container, with ml's own login: each attack of tests/postgres_attacks.py
    is refused (with the platform's superuser login, which team containers held before, each
    succeeded); the bakery's aliases and its run (status, events, tags) are untouched and the
    ML team still reads the bakery's artifact."""
    bakery = compose_client.submit_job("bakery", "cake_production_job")
    assert compose_client.wait_for_run(bakery, timeout=600) == "SUCCESS"
    settings = env_settings(compose_stack.env_file)
    owner, database = (
        settings.get("POSTGRES_USER", "dagster"),
        settings.get("POSTGRES_DB", "dagster"),
    )
    queries = (aliases_digest_query("bakery"), run_state_query(bakery))
    before = [compose_stack.psql(query) for query in queries]
    assert before[1].startswith("SUCCESS "), before
    (container,) = compose_stack.container_ids("ml-worker")
    probed = probe(["docker", "exec", container, "python"], "ml", "bakery", owner, database)
    print(f"\nml's role: {probed.role}; outcomes: {probed.outcomes}")
    assert_confined(probed, "ml")
    assert [compose_stack.psql(query) for query in queries] == before and before[0] != ""
    forecast = compose_client.submit_job("ml", "forecast_job")
    assert compose_client.wait_for_run(forecast, timeout=600) == "SUCCESS"


def test_the_ml_containers_object_store_identity_cannot_touch_the_bakerys_objects(
    compose_stack, compose_client
):
    """From ml's worker container, with ml's own object-store keys: each attack of
    tests/object_store_attacks.py on the bakery's step outputs, logs and artifacts is refused
    (with the administrator's keys, which every team container held before, each worked, and
    a pickle written over the bakery's step output ran in the bakery's worker). Nothing of the
    bakery's changes; its next run loads its outputs and the ML team reads its artifact."""
    bakery = compose_client.submit_job("bakery", "cake_production_job")
    assert compose_client.wait_for_run(bakery, timeout=600) == "SUCCESS"
    # The platform's own code location holds the administrator's keys.
    (administrator,) = compose_stack.container_ids("platform-code")
    as_administrator = ["docker", "exec", administrator, "python"]
    keys, before = object_store_attacks.survey(as_administrator, "bakery", "bakery")
    (container,) = compose_stack.container_ids("ml-worker")
    attacked = object_store_attacks.attack(
        ["docker", "exec", container, "python"], "ml", "bakery", keys
    )
    print(f"\nml's identity: {attacked.identity}; outcomes: {attacked.outcomes}")
    object_store_attacks.assert_confined(attacked, "ml")
    assert object_store_attacks.survey(as_administrator, "bakery", "bakery")[1] == before
    again = compose_client.submit_job("bakery", "cake_production_job")
    assert compose_client.wait_for_run(again, timeout=600) == "SUCCESS"
    forecast = compose_client.submit_job("ml", "forecast_job")
    assert compose_client.wait_for_run(forecast, timeout=600) == "SUCCESS"


# From a team's container: ShutdownServer (which stops a code server) on each target, as
# host:port or (address, authority) through the code gateway; what each attempt got.
SHUT_DOWN_EACH = """
import grpc, sys
from dagster._grpc.__generated__ import dagster_api_pb2 as api, dagster_api_pb2_grpc as stubs
for target, authority in {targets!r}:
    options = [("grpc.default_authority", authority)] if authority else []
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            stubs.DagsterApiStub(channel).ShutdownServer(api.Empty(), timeout=10)
            print(target, authority, "ALLOWED")
        except grpc.RpcError as error:
            print(target, authority, "refused", error.code().name)
"""


def network_address(container: str, network: str) -> str:
    return docker_inspect(
        container, f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    )


def test_a_teams_containers_cannot_reach_another_teams_code_server(compose_stack, compose_client):
    """The attack: from ml's containers, ShutdownServer (or StartRun, which runs a bakery job in
    the bakery's container with its keys) on the bakery's code server: by its name, at its
    address on its own code network, and through the code gateway at each of the gateway's
    addresses, naming the bakery's server. Before the code networks, the name alone worked:
    every code server listened on 0.0.0.0 on the network every team shares."""
    name = compose_stack.name
    (bakery_code,) = compose_stack.container_ids("bakery-code")
    (gateway,) = compose_stack.container_ids("code-gateway")
    worker_targets = [
        ("bakery-code:4000", None),
        (f"{network_address(bakery_code, f'{name}-code-bakery')}:4000", None),
        (f"{network_address(bakery_code, name)}:4000", None),
        (f"{network_address(gateway, f'{name}-platform')}:4000", "bakery-code:4000"),
        ("platform-code:4000", None),
    ]
    # ml's own code server shares a network with the gateway: the gateway does not listen there.
    code_targets = [
        ("code-gateway:4000", "bakery-code:4000"),
        (f"{network_address(gateway, f'{name}-code-ml')}:4000", "bakery-code:4000"),
    ]
    outcomes = []
    for service, targets in (("ml-worker", worker_targets), ("ml-code", code_targets)):
        code = SHUT_DOWN_EACH.format(targets=targets)
        attempt = in_container(compose_stack, service, code, timeout=120)
        assert attempt.returncode == 0, attempt.stderr
        outcomes += attempt.stdout.splitlines()
    print("\n" + "\n".join(outcomes))
    assert len(outcomes) == len(worker_targets) + len(code_targets)
    # UNAVAILABLE where nothing listens or the name is unknown; DEADLINE_EXCEEDED where the
    # engine drops the packets between networks.
    assert all(" refused " in outcome for outcome in outcomes), outcomes
    # The bakery's server still serves, through the gateway, and its job runs.
    run_id = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(run_id, timeout=300) == "SUCCESS"


def forecast_read(compose_client: PlatformClient) -> dict:
    run_id = compose_client.submit_job("ml", "forecast_job")
    assert compose_client.wait_for_run(run_id, timeout=600) == "SUCCESS"
    return compose_client.output_metadata(run_id)["cake_demand_forecast"]


def test_the_ml_container_cannot_make_the_ml_team_read_an_edited_or_endless_bakery_table(
    compose_stack, compose_client
):
    """The attack: from ml's worker, on the artifact-cache volume every team mounts, the
    bakery's cached table rewritten with its size and xxh128 in entry.json and checks/. Before
    the producer signed each file's seal, the next read returned the edited rows, no error
    (`[['sponge', 99999]]`, shown in the package's tests). Now the read checks the entry against
    the bakery's signed seal and fetches it again from the object store. Then its manifest
    linked to /dev/zero, which a step read until a MemoryError before reads were bounded."""
    bakery = compose_client.submit_job("bakery", "cake_production_job")
    assert compose_client.wait_for_run(bakery, timeout=600) == "SUCCESS"
    before = forecast_read(compose_client)
    edit = in_container(
        compose_stack, "ml-worker", shared_layer_attacks.EDIT_THE_BAKERYS_CACHED_TABLE
    )
    assert edit.returncode == 0, edit.stderr
    assert int(edit.stdout) >= 1, "the bakery's table is not in the shared cache"
    after = forecast_read(compose_client)
    print(f"\nforecast before the edit: {before}; after: {after}")
    assert after["cakes_read"] == before["cakes_read"] == 6
    assert after["expected_slices"] == before["expected_slices"]
    # Its manifest made endless: refused at once as corrupt (a regular file of at most 64 MiB
    # is read), and fetched again.
    link = in_container(
        compose_stack, "ml-worker", shared_layer_attacks.LINK_THE_BAKERYS_MANIFEST_TO_DEV_ZERO
    )
    assert link.returncode == 0, link.stderr
    assert int(link.stdout) >= 1
    assert forecast_read(compose_client) == before


def test_the_ml_container_cannot_make_its_step_worker_write_into_a_bakery_run(
    compose_stack, compose_client
):
    """The attack: from ml's worker container, with ml's own Redis user, a step task on ml's
    own queue naming ml's own code but the bakery's run. Before the step worker checked the
    run's code location, ml's worker ran the step and wrote its events into the bakery's run;
    now it refuses before it runs anything, and the bakery's run is unchanged."""
    victim = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(victim, timeout=300) == "SUCCESS"
    before = compose_client.run_events(victim)
    attempt = in_container(
        compose_stack, "ml-worker", shared_layer_attacks.STEP_OF_ANOTHER_TEAMS_RUN, victim
    )
    print(f"\nml's step worker, given a step of the bakery's run: {attempt.stdout.strip()}")
    assert attempt.returncode == 0, attempt.stderr
    assert attempt.stdout.startswith("refused ForeignTaskError"), attempt.stdout
    assert f"step of run {victim}" in attempt.stdout
    assert compose_client.run_events(victim) == before
    assert compose_client.run(victim)["status"] == "SUCCESS"


def test_a_team_that_fills_the_broker_gets_every_launch_a_clear_error_not_a_hang(
    compose_stack, compose_client
):
    """The attack: ml floods its own queue, with its own Redis user, until Redis refuses.
    Redis is bounded (`--maxmemory`, `noeviction`; here the bound is lowered to 8 MiB over
    what it holds, as an operator's REDIS_MAXMEMORY would be reached), so it refuses writes
    instead of growing or evicting queued steps, and the bakery's launch fails at once naming
    the bound and the fix; once ml's keys are gone the bakery runs again.

    A fill that stops at its first refusal leaves Redis at its bound, where memory it frees from
    its buffers lets a small launch in: seen here, the run was then sent but its run worker could
    not start it, and Dagster's start timeout failed it after 180 s (README, threat model). So,
    as a flood that goes on would, the bound is then set just under what Redis holds."""

    def redis_cli(*command: str) -> str:
        return compose_stack.run("exec", "-T", "redis", "redis-cli", *command).strip()

    def used_memory() -> int:
        return int(redis_cli("INFO", "memory").split("used_memory:")[1].split()[0])

    bound = redis_cli("CONFIG", "GET", "maxmemory").split()[-1]
    redis_cli("CONFIG", "SET", "maxmemory", str(used_memory() + (8 << 20)))
    try:
        flood = in_container(compose_stack, "ml-worker", shared_layer_attacks.FLOOD_OWN_QUEUE)
        assert flood.stdout.strip() == "full", flood.stdout + flood.stderr
        redis_cli("CONFIG", "SET", "maxmemory", str(used_memory() - (1 << 20)))
        started = time.monotonic()
        refused = compose_client.submit_job("bakery", "probe_ping")
        assert compose_client.wait_for_run(refused, timeout=300) == "FAILURE"
        waited = time.monotonic() - started
        messages = failure_messages(compose_client, refused)
        print(f"\nlaunch into a full broker: FAILURE after {waited:.1f}s")
        assert "The broker (Redis) is full" in messages, messages
        assert "REDIS_MAXMEMORY" in messages, messages
    finally:
        cleaned = in_container(
            compose_stack, "ml-worker", shared_layer_attacks.FLOOD_OWN_QUEUE, "clean"
        )
        redis_cli("CONFIG", "SET", "maxmemory", bound)
    assert cleaned.stdout.strip() == "cleaned", cleaned.stdout + cleaned.stderr
    again = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(again, timeout=300) == "SUCCESS"


def test_no_secret_is_baked_into_any_image(compose_stack):
    secrets_to_find = compose_stack.secrets | developer_secrets()
    for image in set(compose_stack.run("config", "--images").split()):
        if image.startswith(("postgres:", "redis:")):
            continue
        history = subprocess.run(
            ["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True
        ).stdout
        inspected = docker_inspect(image)
        for secret in secrets_to_find:
            assert secret not in history and secret not in inspected, f"{image} holds a secret"
        for name in (*(f"{secret}=" for secret in SHARED_SECRETS), SIGNING_KEY_PREFIX):
            assert name not in inspected, f"{image} sets {name} in its environment"
        env_files = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "find", image, "/opt", "-name", ".env*"],
            capture_output=True,
            text=True,
        ).stdout
        assert env_files.strip() == "", f"{image} contains {env_files}"


def in_container(
    compose_stack: ComposeStack, service: str, code: str, *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -c code` in the service's container, as its own user with its own credentials."""
    return subprocess.run(
        [*compose_stack.compose, "exec", "-T", service, "python", "-c", code, *arguments],
        cwd=compose_stack.checkout,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def in_worker(compose_stack: ComposeStack, team: str, code: str) -> subprocess.CompletedProcess:
    return in_container(compose_stack, f"{team}-worker", code, timeout=60)


def test_terminate_stops_a_running_step_and_cancels_the_run(compose_stack, compose_client):
    run_id = compose_client.submit_job("bakery", "probe_sleep", run_config=sleep_config(120))
    pid = int(wait_for_event(compose_client, run_id, SLEEPING).group(1))

    result = terminate(compose_client, run_id)
    clicked = time.monotonic() - result.canceled_seconds
    alive = f"import os; os.kill({pid}, 0)"
    deadline = time.monotonic() + 30
    while in_worker(compose_stack, "bakery", alive).returncode == 0:
        assert time.monotonic() < deadline, f"step process {pid} still alive in bakery-worker"
        time.sleep(0.5)
    step_gone = time.monotonic() - clicked
    output = f"/opt/dagster/shared/storage/{run_id}/sleep_then_report/result"
    written = in_worker(compose_stack, "bakery", f"import os; print(os.path.exists({output!r}))")

    print(
        f"\ncontainer terminate: request {result.request_seconds:.2f}s, {result.status} after "
        f"{result.canceled_seconds:.2f}s, step process gone within {step_gone:.2f}s"
    )
    assert_canceled_promptly(result)
    assert written.stdout.strip() == "False", written


def test_terminate_stops_a_fan_out_midway_in_containers(compose_stack, compose_client):
    run_id = compose_client.submit_job(
        "bakery", "probe_fan_out", run_config=fan_out_run_config(2.0)
    )
    wait_for_successes(compose_client, run_id, 2)

    result = terminate(compose_client, run_id)
    done = step_successes(compose_client, run_id)
    active = (
        "import json, os; from dagster_team_celery.control import team_app; "
        "app = team_app(os.environ['DAGSTER_TEAM']); "
        "print(json.dumps(app.control.inspect(timeout=3).active() or {}))"
    )
    deadline = time.monotonic() + 30
    while any(json.loads(in_worker(compose_stack, "bakery", active).stdout or "{}").values()):
        assert time.monotonic() < deadline, "bakery steps still running after the cancel"
        time.sleep(1)
    time.sleep(3)

    print(
        f"\ncontainer fan-out terminate: request {result.request_seconds:.2f}s, {result.status} "
        f"after {result.canceled_seconds:.2f}s with {done}/{FAN_OUT_WIDTH} steps done"
    )
    assert_canceled_promptly(result)
    assert done < FAN_OUT_WIDTH
    assert step_successes(compose_client, run_id) == done


def test_no_secret_appears_on_any_container_command_line(compose_stack):
    # `docker inspect` and `ps` show command lines to anyone who can read them.
    for service in compose_stack.services():
        for container in compose_stack.container_ids(service):
            inspected = docker_inspect(container, "{{json .Path}} {{json .Args}}")
            assert not [s for s in compose_stack.secrets if s in inspected], service
    # The process that really runs in the Redis container, after its entrypoint's execs.
    running = compose_stack.run("exec", "-T", "redis", "cat", "/proc/1/cmdline")
    assert "redis-server" in running
    assert not [s for s in compose_stack.secrets if s in running]


def websocket_handshake(url: str, login: tuple[str, str] | None) -> tuple[str, bytes]:
    """The status line of a graphql-ws upgrade on /graphql (the UI's live run logs), and the
    first frame after the protocol's connection_init, sent by hand."""
    parts = urlsplit(url)
    headers = [
        "GET /graphql HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: graphql-ws",
    ]
    if login:
        headers += [
            f"{name}: {value}" for name, value in ui_login.basic_auth_header(*login).items()
        ]
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        status = connection.recv(4096).decode(errors="replace").split("\r\n")[0]
        if " 101 " not in status:
            return status, b""
        init = json.dumps({"type": "connection_init", "payload": {}}).encode()
        # A masked text frame (clients must mask), with a zero mask for readability.
        connection.sendall(bytes([0x81, 0x80 | len(init)]) + bytes(4) + init)
        return status, connection.recv(4096)[2:]


def test_the_ui_is_reached_only_through_its_login(compose_stack):
    url = compose_stack.webserver_url
    user, password = compose_stack.ui_login

    anonymous = requests.get(f"{url}/server_info", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(f"{url}/server_info", auth=(user, "wrong"), timeout=30).status_code == 401
    assert requests.get(f"{url}/server_info", auth=(user, password), timeout=30).ok
    assert websocket_handshake(url, None)[0].split()[1] == "401"
    status, first_frame = websocket_handshake(url, (user, password))
    assert " 101 " in status
    assert json.loads(first_frame)["type"] == "connection_ack"

    # Nothing but the proxy is published: the webserver has no port on the host.
    for container in compose_stack.container_ids("webserver"):
        bindings = docker_inspect(container, "{{json .HostConfig.PortBindings}}")
        assert bindings in ("null", "{}"), bindings
    # Only a hash of the password reaches the proxy.
    users = compose_stack.run("exec", "-T", "ui", "cat", "/etc/caddy/ui-users")
    assert users.startswith(f"{user} $2b$") and password not in users


def test_each_person_acts_only_for_their_own_team_through_the_login(compose_stack, compose_client):
    """The UI's roles in the deployed stack: Caddy names who signed in, the webserver applies
    their role (tests/test_ui_roles.py has every case against the local stack)."""
    url = compose_stack.webserver_url
    alice = Caller(url, "", auth=("alice", PEOPLE_PASSWORD))
    vera = Caller(url, "", auth=("vera", PEOPLE_PASSWORD))

    run_id = alice.launched("bakery", "probe_ping")
    assert compose_client.wait_for_run(run_id, timeout=300) == "SUCCESS"
    status, body = alice.launch("ml", "probe_ping")
    assert status == 403 and "code location ml" in refusal(body)["message"], body
    # Naming herself the tools' admin login in the proxy's header changes nothing.
    forged = Caller(url, "admin", auth=("alice", PEOPLE_PASSWORD))
    assert forged.launch("ml", "probe_ping")[0] == 403
    status, body = vera.launch("bakery", "probe_ping")
    assert status == 403 and "vera (viewer)" in refusal(body)["message"], body
    # The same refusal with curl, as a person scripting the API would meet it.
    terminate = {
        "query": "mutation T($id: String!) { terminateRun(runId: $id) { __typename } }",
        "variables": {"id": run_id},
    }
    curl = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-u", f"vera:{PEOPLE_PASSWORD}",
         "-H", "Content-Type: application/json", "-d", json.dumps(terminate), f"{url}/graphql"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    answer, code = curl.stdout.rsplit("\n", 1)
    assert code == "403" and "terminate_pipeline_execution" in answer, curl.stdout

    # The audit log, in the platform's Postgres, read by an admin (the tools' login).
    audit = requests.get(f"{url}/ui-audit?limit=10", auth=compose_stack.ui_login, timeout=30)
    entries = audit.json()
    assert [e["outcome"] for e in entries if e["user"] == "alice"][:3] == [
        "refused", "refused", "allowed",
    ], entries  # fmt: skip
    assert requests.get(f"{url}/ui-audit", auth=alice.auth, timeout=30).status_code == 403
    # No team's Postgres role may read or erase it.
    assert compose_stack.psql("SELECT count(*) FROM ui_audit.mutations") != "0"
    usage = "SELECT has_schema_privilege('dagster_teams', 'ui_audit', 'USAGE')"
    assert compose_stack.psql(usage) == "f"


def test_a_teams_container_cannot_reach_the_webserver_around_its_login(compose_stack):
    # The attack: a team's code, on the platform's network, calls the webserver's GraphQL API
    # directly, to launch or terminate another team's runs without the login.
    # Also at its address in the `ui` network, which a team's container could guess.
    behind_login = network_address(
        compose_stack.container_ids("webserver")[0], f"{compose_stack.name}-ui"
    )
    urls = (
        "http://webserver:3000/server_info",
        "http://ui:8080/server_info",
        f"http://{behind_login}:3000/server_info",
    )
    probe = (
        "import urllib.request, urllib.error\n"
        f"for url in {urls!r}:\n"
        "    try:\n"
        "        urllib.request.urlopen(url, timeout=10); print(url, 'open')\n"
        "    except urllib.error.HTTPError as error:\n"
        "        print(url, error.code)\n"
        "    except OSError as error:\n"
        "        print(url, 'unreachable', type(error).__name__)\n"
    )
    seen = in_worker(compose_stack, "ml", probe).stdout.splitlines()
    assert seen[0].startswith(f"{urls[0]} unreachable"), seen
    assert seen[1] == f"{urls[1]} 401", seen
    assert seen[2].startswith(f"{urls[2]} unreachable"), seen


def test_a_step_output_and_log_go_to_the_object_store_and_only_its_s3_api_is_reachable(
    compose_stack, compose_client
):
    run_id = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(run_id, timeout=180) == "SUCCESS"
    # Written by the step worker's container, read back by the webserver's.
    assert "probe ran on" in compose_client.captured_logs(run_id)["report_runtime"]["stdout"]
    # The attacks, from a team's container on the platform's network: the store's master,
    # volume server and filer take unauthenticated reads and writes, so they must be
    # unreachable; the S3 gateway's gRPC port takes new identities, so it must refuse a
    # client without the store's own certificate; S3 itself refuses anonymous requests.
    probe = (
        "import socket, urllib.request, urllib.error, grpc\n"
        "for port in (9333, 8080, 8888, 19333, 18080, 18888):\n"
        "    try:\n"
        "        socket.create_connection(('object-store', port), timeout=5).close()\n"
        "        print(port, 'open')\n"
        "    except OSError:\n"
        "        print(port, 'closed')\n"
        "try:\n"
        "    urllib.request.urlopen('http://object-store:8333/mlplatform', timeout=10)\n"
        "    print('s3 open')\n"
        "except urllib.error.HTTPError as error:\n"
        "    print('s3', error.code)\n"
        "channel = grpc.insecure_channel('object-store:18333')\n"
        "call = channel.unary_unary('/messaging_pb.SeaweedS3IamCache/PutIdentity',\n"
        "    request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)\n"
        "try:\n"
        "    call(b'\\x0a\\x0a\\x0a\\x08intruder', timeout=10); print('grpc accepted')\n"
        "except grpc.RpcError as error:\n"
        "    print('grpc', error.code().name)\n"
    )
    seen = in_worker(compose_stack, "ml", probe).stdout.splitlines()
    assert seen[:6] == [f"{port} closed" for port in (9333, 8080, 8888, 19333, 18080, 18888)]
    assert seen[6:] == ["s3 403", "grpc UNAVAILABLE"], seen


def test_a_recreated_webserver_is_reached_through_the_same_login(compose_stack):
    # What `make up` does after a platform image change; the proxy must follow the webserver to
    # its new container and address without being recreated itself.
    proxy = compose_stack.container_ids("ui")
    compose_stack.run("up", "-d", "--no-deps", "--force-recreate", "webserver")
    compose_stack.wait_healthy()
    assert compose_stack.container_ids("ui") == proxy
    compose_stack.wait_for_ui_through_the_proxy()


def launchers_up(compose_stack: ComposeStack, compose_file: str) -> None:
    """Recreate the daemon and the webserver as .env's COMPOSE_FILE would have them."""
    env = {**os.environ, "COMPOSE_FILE": compose_file}
    compose_stack.run("up", "-d", "--no-deps", "daemon", "webserver", env=env)
    compose_stack.wait_healthy()
    compose_stack.wait_for_ui_through_the_proxy()


def assert_a_killed_run_container_is_resumed_in_a_new_one(client: PlatformClient) -> None:
    run_id = client.submit_job("bakery", "probe_sleep", run_config=sleep_config(20))
    wait_for_event(client, run_id, SLEEPING)
    first = {tag["key"]: tag["value"] for tag in client.run(run_id)["tags"]}["docker/container_id"]
    killed_at = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", "KILL", first], check=True, capture_output=True)
    status = client.wait_for_run(run_id, timeout=300)
    tags = {tag["key"]: tag["value"] for tag in client.run(run_id)["tags"]}
    print(f"run container killed: {status} {time.monotonic() - killed_at:.1f}s after the kill")
    assert status == "SUCCESS", failure_messages(client, run_id)
    assert tags["docker/container_id"] != first, "the resumed run got no container of its own"
    assert "Started process for resuming job" in "\n".join(
        event.get("message") or "" for event in client.run_events(run_id)
    )


def test_container_isolation_gives_a_run_its_own_container_from_its_teams_image(
    compose_stack, compose_client
):
    launchers_up(compose_stack, CONTAINER_RUNS)
    try:
        wait_for_loaded_locations(compose_client, compose_stack.teams, timeout=180)
        started = time.monotonic()
        run_id = compose_client.submit_job("bakery", "probe_ping")
        status = compose_client.wait_for_run(run_id, timeout=300)
        print(f"\ncontainer isolation: probe_ping {status} {time.monotonic() - started:.1f}s")
        assert status == "SUCCESS"
        tags = {tag["key"]: tag["value"] for tag in compose_client.run(run_id)["tags"]}
        assert tags.get("docker/container_id"), "the run did not get its own container"
        assert tags["dagster/image"].endswith("/bakery:latest"), tags["dagster/image"]
        workers = compose_client.step_workers(run_id)
        assert workers and all(worker.startswith("bakery@") for worker in workers.values())
        uid = compose_stack.run("exec", "-T", "daemon", "id", "-u").strip()
        assert uid == "0", "the daemon needs root for the engine socket"
        assert_a_killed_run_container_is_resumed_in_a_new_one(compose_client)
    finally:
        compose_stack.remove_run_containers()
        launchers_up(compose_stack, "docker-compose.yml")
    wait_for_loaded_locations(compose_client, compose_stack.teams, timeout=180)
    warm_again = compose_client.submit_job("bakery", "probe_ping")
    assert compose_client.wait_for_run(warm_again, timeout=300) == "SUCCESS"
