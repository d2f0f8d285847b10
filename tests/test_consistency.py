"""Every registered team is wired the same way everywhere, and one Dagster version rules."""

import os
import re

import pytest
import yaml

from registry import generate
from tests.repo import (
    CODE_LOCATIONS,
    REPO_ROOT,
    compose,
    container_runs_override,
    instance,
    lock_files,
    lock_versions,
    team_folders,
)

DAGSTER_CORE = (
    "dagster",
    "dagster-webserver",
    "dagster-graphql",
    "dagster-pipes",
    "dagster-shared",
)
DAGSTER_LIBRARIES = ("dagster-celery", "dagster-postgres", "dagster-docker")


def test_no_generated_file_is_stale():
    """workspace.yaml and the compose team block match code_locations/ (`make generate`)."""
    differences = generate.stale(REPO_ROOT)
    assert not differences, "\n".join(differences.values())


@pytest.mark.parametrize("team", team_folders())
def test_team_has_a_code_server_serving_its_module(team):
    service = compose()["services"][f"{team}-code"]
    command = service["command"]
    # The server alone: no Reload proxy, since the code is baked into the image; listening
    # only on its team's code network, at its address toward the code gateway.
    assert command[:8] == [
        "dagster-platform-entrypoint",
        "--address-toward",
        "code-gateway",
        "--",
        "dagster",
        "api",
        "grpc",
        "--lazy-load-user-code",
    ]
    assert command[command.index("--host") + 1] == "{address}"
    assert command[command.index("--module-name") + 1] == f"{team}.definitions"
    assert command[command.index("--location-name") + 1] == team
    assert command[command.index("--port") + 1] == "4000"
    assert service["build"]["args"]["TEAM"] == team
    assert service["environment"]["DAGSTER_CURRENT_IMAGE"] == service["image"]
    # The launcher ignores what a code server reports; advertising one would only mislead.
    assert "DAGSTER_CONTAINER_CONTEXT" not in service["environment"]


@pytest.mark.parametrize("team", team_folders())
def test_team_has_a_worker_built_from_its_own_image(team):
    code_server = compose()["services"][f"{team}-code"]
    worker = compose()["services"][f"{team}-worker"]
    assert worker["image"] == code_server["image"]
    assert worker["build"] == code_server["build"]
    # The worker consumes the queue named by DAGSTER_TEAM, set by the registry, not the image.
    assert worker["command"] == ["dagster-team-worker"]
    assert worker["environment"]["DAGSTER_TEAM"] == team
    assert code_server["environment"]["DAGSTER_TEAM"] == team


@pytest.mark.parametrize("team", team_folders())
def test_team_services_mount_the_artifact_cache_and_shared_storage(team):
    for service_name in (f"{team}-code", f"{team}-worker"):
        volumes = compose()["services"][service_name]["volumes"]
        assert "artifact-cache:/opt/dagster/artifact-cache" in volumes
        assert "dagster-shared:/opt/dagster/shared" in volumes
    # Run containers, in the isolation mode.
    for launcher in ("daemon", "webserver"):
        run_context = container_runs_override()["services"][launcher]["environment"][
            "DAGSTER_RUN_CONTAINER_CONTEXT"
        ]
        assert "-artifact-cache:/opt/dagster/artifact-cache" in run_context
        assert "-shared:/opt/dagster/shared" in run_context


def test_no_platform_service_names_a_team():
    """A team added or removed must not change, and so recreate, any platform service but the
    code gateway, which joins each team's code network."""
    services = compose()["services"]
    team_services = {name for team in team_folders() for name in (f"{team}-code", f"{team}-worker")}
    for name, service in services.items():
        if name in team_services or name == "code-gateway":
            continue
        text = repr(service)
        named = [team for team in team_folders() if f"{team}-code" in text or f"'{team}'" in text]
        assert not named, f"{name} names team(s) {named}"


def test_every_team_has_a_run_limit_in_one_entry():
    # One entry for every team, present and future: nothing to add when a team is created.
    limits = instance()["concurrency"]["runs"]["tag_concurrency_limits"]
    per_team = [
        limit
        for limit in limits
        if limit["key"] == "dagster/code_location"
        and limit.get("value") == {"applyLimitPerUniqueValue": True}
    ]
    assert len(per_team) == 1 and per_team[0]["limit"] >= 1
    assert "tag_concurrency_limits" not in instance()["run_coordinator"]["config"]


def test_pools_are_enforced_per_step_with_a_default_limit():
    pools = instance()["concurrency"]["pools"]
    assert pools["granularity"] == "op"
    assert pools["default_limit"] >= 1
    assert instance()["run_monitoring"]["free_slots_after_run_end_seconds"] > 0


@pytest.mark.parametrize("team", team_folders())
def test_team_declares_the_platform_component_for_its_own_queue(team):
    """The platform's wiring is a component the team declares, not code copied into it."""
    defs_folder = CODE_LOCATIONS / team / "src" / team / "defs"
    declared = yaml.safe_load((defs_folder / "platform" / "defs.yaml").read_text())
    assert declared == {
        "type": "dagster_team_celery.component.TeamPlatformComponent",
        "attributes": {"team": team},
    }
    copied = [
        path.relative_to(defs_folder)
        for path in defs_folder.rglob("*.py")
        if re.search(r"team_celery_executor|WandbArtifactsIOManager\(", path.read_text())
    ]
    assert copied == [], f"{team} carries platform wiring of its own: {copied}"


def test_one_dagster_version_in_every_lock():
    versions = {lock.relative_to(REPO_ROOT): lock_versions(lock) for lock in lock_files()}
    assert len(versions) == 1 + len(team_folders())
    core = {
        str(path): {v[name] for name in DAGSTER_CORE if name in v} for path, v in versions.items()
    }
    libraries = {
        str(path): {v[name] for name in DAGSTER_LIBRARIES if name in v}
        for path, v in versions.items()
    }
    assert {frozenset(found) for found in core.values()} == {frozenset({"1.13.27"})}, core
    assert {frozenset(found) for found in libraries.values()} == {frozenset({"0.29.27"})}, libraries
    for path, found in versions.items():
        assert found["dagster"] == "1.13.27", path
        assert found["dagster-celery"] == "0.29.27", path
        assert found["celery"] == versions[next(iter(versions))]["celery"], (
            f"{path}: every worker and orchestrator must speak the same Celery"
        )


def test_images_install_only_from_the_locks():
    for dockerfile in (REPO_ROOT / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert "uv sync --frozen" in text, dockerfile
        installs = re.findall(r"pip install[^\n]*", text)
        assert all("uv==" in line for line in installs), (dockerfile, installs)


def dockerfile_instructions(path) -> list[str]:
    """The file's instructions, continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = (line.strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_team_images_start_from_the_platform_images_layers():
    """Every team image reuses the platform image's first layers (Dagster and the platform
    lock, installed once), so a new team's build installs only its own additions. A cached
    layer is reused only if every instruction up to it is the same, with no team argument."""
    platform = dockerfile_instructions(REPO_ROOT / "docker" / "platform.Dockerfile")
    team = dockerfile_instructions(REPO_ROOT / "docker" / "team.Dockerfile")
    # Through the third-party dependencies (the first `uv sync`), and no source code copied.
    first_sync = next(i for i, line in enumerate(platform) if line.startswith("RUN uv sync"))
    shared = platform[: first_sync + 1]
    assert team[: len(shared)] == shared
    assert not any("TEAM" in line for line in shared)
    copies = [line for line in shared if line.startswith("COPY")]
    assert all("pyproject.toml" in line or "uv.lock" in line for line in copies), copies


def test_compose_run_containers_and_local_mode_give_team_code_the_same_variables(monkeypatch):
    """The team environment is written in three places that cannot share one file: compose's
    x-team-env, dagster.yaml's run_launcher.env_vars (what the daemon copies into each run
    container) and local mode's StackEnvironment. A variable added to one only would silently
    never reach runs, so the three must name the same variables."""
    from devstack.environment import StackEnvironment, StackSettings

    # A run container needs no DAGSTER_HOME: its launch command carries the instance itself.
    compose_names = set(compose()["x-team-env"]) - {"DAGSTER_HOME"}
    run_container_names = set(instance()["run_launcher"]["config"]["container"]["env_vars"])
    # A run container orchestrates only (its steps run on the team's Celery workers), so it
    # gets no signing identity: neither a team key nor the trust file.
    signing = {"DAGSTER_WANDB_IO_TRUSTED_KEYS"}
    for name in list(os.environ):
        monkeypatch.delenv(name)  # local mode passes the caller's environment through
    local = StackEnvironment(StackSettings(teams=["bakery"]))
    local.secrets = {
        **dict.fromkeys(("postgres_password", "redis_password"), "x"),
        **dict.fromkeys(("object_store_access_key_id", "object_store_secret_access_key"), "x"),
        "team_signing_keys": {"bakery": "x"},
        "team_redis_passwords": {"bakery": "x"},
        "team_postgres_passwords": {"bakery": "x"},
        "team_object_store_secrets": {"bakery": "x"},
    }
    local.ports = {"postgres": 1, "redis": 2, "object-store": 3}
    # What only a local process needs: its team (compose sets it per service), where it
    # reports liveness, its own temporary folder, and a quiet wandb.
    # Compose sets each team's key per service too.
    local_only = {"DAGSTER_HOME", "DAGSTER_TEAM", "DAGSTER_CELERY_LIVENESS_FILE", "TMPDIR"}
    # Its Redis user too (and the launcher gives each run container its team's).
    local_only |= {"DAGSTER_WANDB_IO_SIGNING_KEY", "DAGSTER_CELERY_BROKER_URL"}
    local_only |= {"DAGSTER_CELERY_BACKEND_URL"}
    local_names = set(local.team_env("bakery")) - local_only - {"WANDB_SILENT"}

    assert run_container_names == compose_names - signing, (
        "dagster.yaml run_launcher.env_vars and docker-compose.yml x-team-env differ: "
        f"{sorted(run_container_names ^ (compose_names - signing))}"
    )
    assert local_names == compose_names, (
        "devstack/environment.py team_env and docker-compose.yml x-team-env differ: "
        f"{sorted(local_names ^ compose_names)}"
    )


def test_redis_users_accept_exactly_the_registrys_team_names():
    """redis_acl cannot import the registry (nor the registry it), so it keeps a copy of the
    registry's team-name pattern; a looser copy would let glob characters into ACL patterns."""
    from dagster_team_celery.deploy import redis_acl
    from registry import NAME_PATTERN

    assert redis_acl.TEAM_NAME_PATTERN.pattern == NAME_PATTERN.pattern
    assert redis_acl.TEAM_NAME_PATTERN.flags == NAME_PATTERN.flags


def test_a_teams_code_server_shares_its_code_network_only_with_the_code_gateway():
    services = compose()["services"]
    gateway = services["code-gateway"]["networks"]
    assert set(gateway) == {"platform", *(f"code-{team}" for team in team_folders())}
    assert set(gateway["platform"]["aliases"]) == {
        "code-gateway-on-platform",
        *(f"{team}-code" for team in team_folders()),
    }
    for team in team_folders():
        members = [
            name
            for name, service in services.items()
            if f"code-{team}" in (service.get("networks") or [])
        ]
        assert sorted(members) == sorted(["code-gateway", f"{team}-code"])
        assert compose()["networks"][f"code-{team}"]["internal"] is True
    # Where the gateway listens (and the webserver and the daemon are), no team's service is.
    on_platform = {n for n, s in services.items() if "platform" in (s.get("networks") or [])}
    assert on_platform == {"postgres", "redis", "object-store", "webserver", "daemon"} | {
        "platform-code",
        "code-gateway",
    }
