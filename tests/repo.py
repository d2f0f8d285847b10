"""Paths and parsed files of the repository, for tests that read them."""

import os
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import registry

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# The opt-in isolation mode, a container per run: .env's COMPOSE_FILE adds it to the above.
CONTAINER_RUNS_FILE = REPO_ROOT / "docker-compose.container-runs.yml"
COMPOSE_SCHEMA = Path(
    os.environ.get(
        "COMPOSE_SPEC_SCHEMA", REPO_ROOT.parent / "shared" / "schemas" / "compose-spec.json"
    )
)
INSTANCE_YAML = REPO_ROOT / "dagster.yaml"
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
CODE_LOCATIONS = REPO_ROOT / "code_locations"
SIGNING_KEY_PREFIX = "WANDB_IO_SIGNING_KEY_"
REDIS_PASSWORD_PREFIX = "REDIS_PASSWORD_"
POSTGRES_PASSWORD_PREFIX = "POSTGRES_PASSWORD_"
# The shared secrets, and each team's own signing key and Redis password.
SHARED_SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "FLOWER_PASSWORD",
    "FLOWER_REDIS_PASSWORD",
    "LAUNCHER_REDIS_PASSWORD",
    "OBJECT_STORE_ACCESS_KEY_ID",
    "OBJECT_STORE_SECRET_ACCESS_KEY",
    "OBJECT_STORE_WEBSERVER_SECRET_ACCESS_KEY",
)
# Held only on the host, by the UI's users (its proxy gets a hash): compose never reads it.
HOST_SECRETS = ("UI_PASSWORD",)
SECRET_VARIABLES = (
    *SHARED_SECRETS,
    *(team.signing_key_variable for team in registry.teams(REPO_ROOT)),
    *(team.redis_password_variable for team in registry.teams(REPO_ROOT)),
    *(team.postgres_password_variable for team in registry.teams(REPO_ROOT)),
    *(team.object_store_secret_variable for team in registry.teams(REPO_ROOT)),
)


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def container_runs_override() -> dict[str, Any]:
    return yaml.safe_load(CONTAINER_RUNS_FILE.read_text())


@cache
def instance() -> dict[str, Any]:
    return yaml.safe_load(INSTANCE_YAML.read_text())


def team_folders() -> list[str]:
    """The teams whose code lives in this checkout, from the one registry."""
    return [team.name for team in registry.teams(REPO_ROOT) if team.built_here]


def lock_versions(lock_file: Path) -> dict[str, str]:
    lock = tomllib.loads(lock_file.read_text())
    return {package["name"]: package.get("version", "") for package in lock["package"]}


def lock_files() -> list[Path]:
    return [REPO_ROOT / "uv.lock", *sorted(CODE_LOCATIONS.glob("*/uv.lock"))]


def copy_checkout(destination: Path) -> Path:
    """A copy of this checkout's files (tracked and untracked, not ignored), for tests that
    change registry files or add teams without touching the real working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for relative in filter(None, listed):
        source = REPO_ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def env_settings(env_file: Path) -> dict[str, str]:
    """An env file's settings, as the tests write them (KEY=value, one per line)."""
    return dict(line.partition("=")[::2] for line in env_file.read_text().splitlines())
