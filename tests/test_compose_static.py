"""docker-compose.yml: valid for the Compose Specification and safe by default."""

import json
import re
import shutil
import subprocess

import jsonschema
import pytest

from tests.repo import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    CONTAINER_RUNS_FILE,
    REPO_ROOT,
    SECRET_VARIABLES,
    compose,
    container_runs_override,
    team_folders,
)

DUMMY_SECRETS = {name: f"test-{name.lower()}" for name in SECRET_VARIABLES}


def test_compose_file_validates_against_the_compose_spec_schema():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(compose())
    jsonschema.Draft7Validator(schema).validate(container_runs_override())


def test_no_secret_has_a_default_value():
    text = COMPOSE_FILE.read_text() + CONTAINER_RUNS_FILE.read_text()
    for name in SECRET_VARIABLES:
        references = re.findall(r"\$\{" + name + r"(?![A-Z0-9_])([^}]*)\}", text)
        assert references, f"{name} is never used"
        for suffix in references:
            assert suffix.startswith(":?"), f"${{{name}{suffix}}} must be ${{{name}:?...}}"
            assert "make env" in suffix, "the error must say how to create .env"


def test_published_ports_bind_to_loopback_unless_the_user_opts_in():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert re.match(r"^\$\{[A-Z_]+_BIND:-127\.0\.0\.1\}:", str(port)), (name, port)


def test_every_dependency_waits_for_health_or_completion():
    for name, service in compose()["services"].items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            expected = (
                "service_completed_successfully" if dependency == "init" else "service_healthy"
            )
            assert condition == {"condition": expected}, (name, dependency, condition)


def test_every_long_running_service_has_a_healthcheck_and_restart_policy():
    for name, service in compose()["services"].items():
        if name == "init":
            assert service["restart"] == "no"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_healthcheck_commands_survive_the_podman_space_split():
    # podman's Docker API splits ["CMD", ...] arguments at spaces; such checks need CMD-SHELL.
    for name, service in compose()["services"].items():
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            assert not any(" " in arg for arg in test[1:]), (name, test)


def test_redis_takes_its_users_from_the_acl_file_and_keeps_an_append_only_file():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--aclfile /etc/redis/users.acl" in command
    assert {"source": "redis-users", "target": "/etc/redis/users.acl"} in redis["configs"]
    assert compose()["configs"]["redis-users"]["file"] == "${KEYS_DIR:-./keys}/redis-users.acl"
    assert "--appendonly yes" in command
    # Bounded, and full means refused rather than queued steps evicted.
    assert "--maxmemory ${REDIS_MAXMEMORY:-512mb} --maxmemory-policy noeviction" in command


def test_each_team_service_uses_its_own_redis_user_and_the_platform_none():
    services = compose()["services"]
    for team in team_folders():
        for name in (f"{team}-code", f"{team}-worker"):
            environment = services[name]["environment"]
            for variable in ("DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
                assert environment[variable].startswith(f"redis://team_{team}:${{"), name
    # The run launcher's own user, which reaches every team's keys and nothing else.
    for name in ("webserver", "daemon"):
        environment = services[name]["environment"]
        for variable in ("DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
            assert environment[variable].startswith("redis://launcher:${LAUNCHER_REDIS"), name
    for name in ("init", "platform-code"):
        environment = services[name].get("environment") or {}
        assert "DAGSTER_CELERY_BROKER_URL" not in environment, name
    assert services["flower"]["environment"]["DAGSTER_CELERY_BROKER_URL"].startswith(
        "redis://flower:"
    )


def test_no_secret_is_interpolated_into_any_command_line():
    # A value interpolated into `command` shows in `ps` and `docker inspect`; a secret must
    # reach its process through the environment or a file ("$$X" stays literal for the shell).
    for name, service in compose()["services"].items():
        for part in [*(service.get("command") or []), *(service.get("entrypoint") or [])]:
            for secret in SECRET_VARIABLES:
                assert "${" + secret not in part, f"{name}'s command interpolates {secret}"


def test_flower_asks_for_credentials():
    env = compose()["services"]["flower"]["environment"]
    assert env["FLOWER_BASIC_AUTH"].startswith("${FLOWER_USER:-admin}:${FLOWER_PASSWORD:?")


def services_with_the_engine_socket(services: dict) -> set[str]:
    return {
        name
        for name, service in services.items()
        if any("docker.sock" in str(volume) for volume in service.get("volumes", []))
    }


def test_by_default_no_service_sees_the_engine_socket():
    assert services_with_the_engine_socket(compose()["services"]) == set()
    # The teams' Redis and Postgres passwords and object-store keys are for container runs only;
    # the object store alone gets its identities file.
    assert set(compose()["secrets"]) == {"object-store-identities"}
    assert {name for name, service in compose()["services"].items() if service.get("secrets")} == {
        "object-store"
    }


def test_with_container_runs_only_the_webserver_and_the_daemon_see_the_engine_socket():
    override = container_runs_override()["services"]
    assert set(override) == {"webserver", "daemon"}
    assert services_with_the_engine_socket(override) == {"webserver", "daemon"}
    for service in override.values():
        assert service["environment"]["DAGSTER_RUN_ISOLATION"] == "container"
    assert override["daemon"]["secrets"] == ["team-redis", "team-postgres", "team-object-store"]


def test_exactly_one_daemon():
    daemons = [
        name
        for name, service in compose()["services"].items()
        if "dagster-daemon" in (service.get("command") or [])
    ]
    assert daemons == ["daemon"]
    assert "deploy" not in compose()["services"]["daemon"]


def test_no_service_runs_as_root_unless_runs_get_containers():
    for name, service in compose()["services"].items():
        assert "user" not in service, f"{name} should run as its image's non-root user"
    for name, service in container_runs_override()["services"].items():
        assert service["user"] == "0", f"{name} needs root for the engine socket"


def test_every_team_worker_runs_steps_and_warm_runs_and_drains_them_on_a_stop():
    services = compose()["services"]
    for team in team_folders():
        worker = services[f"{team}-worker"]
        # Both roles, forked from one preloaded parent (worker_family.py), checked by one probe.
        assert worker["command"] == ["dagster-team-worker"]
        assert worker["healthcheck"]["test"] == ["CMD", "dagster-team-worker-healthcheck"]
        # The runs in flight drain (up to two minutes), then the steps in flight finish.
        assert worker["stop_grace_period"] == "180s"
        assert f"{team}-runs" not in services


def _compose_cli() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture
def compose_cli():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI on this machine")
    return cli


def _config(compose_cli, env_overrides, tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **env_overrides}
    return subprocess.run(
        [*compose_cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_compose_cli_accepts_the_file(compose_cli, tmp_path):
    result = _config(compose_cli, DUMMY_SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test-redis_password" in result.stdout


def test_the_container_runs_file_adds_the_socket_and_keeps_each_services_own_settings(
    compose_cli, tmp_path
):
    env_file = tmp_path / "runs.env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in DUMMY_SECRETS.items())
        + f"COMPOSE_FILE={COMPOSE_FILE.name}:{CONTAINER_RUNS_FILE.name}\n"
    )
    result = subprocess.run(
        [*compose_cli, "--env-file", str(env_file), "config", "--format", "json"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("webserver", "daemon"):
        mounts = {volume["target"] for volume in services[name]["volumes"]}
        assert mounts == {"/opt/dagster/shared", "/var/run/docker.sock"}, name
        environment = services[name]["environment"]
        assert environment["DAGSTER_RUN_ISOLATION"] == "container"
        assert environment["DAGSTER_POSTGRES_HOST"] == "postgres", "the base file's settings stay"
        assert services[name]["user"] == "0"
    assert services_with_the_engine_socket(services) == {"webserver", "daemon"}


@pytest.mark.parametrize("missing", SECRET_VARIABLES)
def test_compose_refuses_to_start_without_a_secret_and_says_how_to_fix_it(
    compose_cli, tmp_path, missing
):
    env = {name: value for name, value in DUMMY_SECRETS.items() if name != missing}
    result = _config(compose_cli, env, tmp_path)
    assert result.returncode != 0
    assert missing in result.stderr and "make env" in result.stderr


def test_the_ui_is_published_only_through_its_login_proxy():
    services = compose()["services"]
    webserver, ui = services["webserver"], services["ui"]
    # The webserver listens only on its name in the `ui` network, which only the proxy joins.
    command = webserver["command"]
    listens_on = command[command.index("--host") + 1]
    assert webserver["networks"]["ui"] == {"aliases": [listens_on]}
    assert compose()["networks"]["ui"]["internal"] is True
    joined = [name for name, service in services.items() if "ui" in (service.get("networks") or [])]
    assert sorted(joined) == ["ui", "webserver"]
    assert ui["environment"]["UI_UPSTREAM"] == f"{listens_on}:3000"
    assert "ports" not in webserver
    assert ui["ports"] == ["${WEBSERVER_BIND:-127.0.0.1}:${WEBSERVER_PORT:-3000}:8080"]
    assert ui["read_only"] is True
    assert {"source": "ui-users", "target": "/etc/caddy/ui-users"} in ui["configs"]
    assert compose()["configs"]["ui-users"]["file"] == "${KEYS_DIR:-./keys}/ui-users"
    # The roles the webserver applies to whoever the proxy names (`make env`, `make user`).
    assert webserver["command"][0] == "dagster-platform-webserver"
    access = webserver["environment"]["DAGSTER_UI_ACCESS_FILE"]
    assert {"source": "ui-access", "target": access} in webserver["configs"]
    assert {"source": "workspace", "target": "/opt/dagster/home/workspace.yaml"} in webserver[
        "configs"
    ]
    # The password stays on the host; the proxy gets only its hash.
    assert "${UI_PASSWORD" not in COMPOSE_FILE.read_text()


def test_the_ui_proxy_runs_unprivileged():
    dockerfile = (REPO_ROOT / "docker" / "ui-proxy" / "Dockerfile").read_text()
    assert "\nUSER 1000:1000\n" in dockerfile
