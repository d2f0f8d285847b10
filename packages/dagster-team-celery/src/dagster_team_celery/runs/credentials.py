"""The credentials the launcher gives a run container: its own team's Redis user's, Postgres
role's and object-store identity's, never the daemon's.

The daemon reads every team's passwords from owner-only files (``make env`` writes
keys/team-redis.json, keys/team-postgres.json and keys/team-object-store.json; compose mounts
them as secrets), because the
daemon launches every team's
runs. The run's team is its code location, which the daemon takes from the workspace, never
from anything the team's code server says. The credentials go into the container's
environment at launch only; no run record holds them.
"""

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dagster_team_celery.deploy import redis_acl
from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, PlatformConfigError

# dagster_wandb_io.index_postgres.INDEX_URL_ENV; not imported, as this package does not need
# the W&B one installed.
INDEX_URL_ENV = "DAGSTER_WANDB_IO_INDEX_URL"

TEAM_REDIS_CREDENTIALS_ENV = "DAGSTER_TEAM_REDIS_CREDENTIALS"
TEAM_POSTGRES_CREDENTIALS_ENV = "DAGSTER_TEAM_POSTGRES_CREDENTIALS"
TEAM_OBJECT_STORE_CREDENTIALS_ENV = "DAGSTER_TEAM_OBJECT_STORE_CREDENTIALS"
RUN_REDIS_ADDRESS_ENV = "DAGSTER_RUN_REDIS_ADDRESS"
DEFAULT_RUN_REDIS_ADDRESS = "redis:6379"


def team_passwords(variable: str = TEAM_REDIS_CREDENTIALS_ENV) -> dict[str, Any]:
    """Team -> password, from the file named in ``variable``; empty when it is not set."""
    raw_path = os.environ.get(variable, "").strip()
    if not raw_path:
        return {}
    path = Path(raw_path)
    try:
        passwords = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PlatformConfigError(
            f"Cannot read the teams' credentials from {path} ({variable}): {error}."
            f" Run `make env`, which writes keys/{path.name}."
        ) from error
    if not isinstance(passwords, dict):
        raise PlatformConfigError(f"{path} must map team names to passwords; run `make env`.")
    return passwords


def team_redis_urls(team: str) -> tuple[str, str] | None:
    """The team's broker and result backend URLs, as its own Redis user; None when the
    deployment gives the launcher no credentials file."""
    password = team_passwords().get(team)
    if password is None:
        return None
    host, _, port = os.environ.get(RUN_REDIS_ADDRESS_ENV, DEFAULT_RUN_REDIS_ADDRESS).rpartition(":")
    user = redis_acl.team_user(team)
    return (
        redis_acl.redis_url(user, password, host, port, 0),
        redis_acl.redis_url(user, password, host, port, 1),
    )


def broker_env_for(team: str) -> list[str]:
    """``KEY=VALUE`` entries for the run container; none when the deployment gives the launcher
    no credentials file (then the run containers get the URLs listed in dagster.yaml)."""
    urls = team_redis_urls(team)
    if urls is None:
        return []
    broker, backend = urls
    return [f"{BROKER_URL_ENV}={broker}", f"{BACKEND_URL_ENV}={backend}"]


def postgres_env_for(team: str) -> list[str]:
    """``KEY=VALUE`` entries that make the run container connect as its team's Postgres role
    (the instance and the W&B index); none when the deployment gives no credentials file."""
    password = team_passwords(TEAM_POSTGRES_CREDENTIALS_ENV).get(team)
    if password is None:
        return []
    role = redis_acl.team_user(team)
    host = os.environ.get("DAGSTER_POSTGRES_HOST", "postgres")
    port = os.environ.get("DAGSTER_POSTGRES_PORT", "5432")
    database = os.environ.get("DAGSTER_POSTGRES_DB", "dagster")
    index_url = f"postgresql://{role}:{quote(password, safe='')}@{host}:{port}/{database}"
    return [
        f"DAGSTER_POSTGRES_USER={role}",
        f"DAGSTER_POSTGRES_PASSWORD={password}",
        f"{INDEX_URL_ENV}={index_url}",
    ]


def object_store_env_for(team: str) -> list[str]:
    """``KEY=VALUE`` entries that make the run container use its team's object-store identity
    (its own step outputs and logs, its own entities' artifacts); none when the deployment
    gives no credentials file."""
    keys = team_passwords(TEAM_OBJECT_STORE_CREDENTIALS_ENV).get(team)
    if keys is None:
        return []
    if not isinstance(keys, dict) or not {"access_key_id", "secret_access_key"} <= keys.keys():
        raise PlatformConfigError(
            f"The object-store keys of team {team!r} are not an access_key_id and a"
            " secret_access_key; run `make env` to write keys/team-object-store.json again."
        )
    return [
        f"AWS_ACCESS_KEY_ID={keys['access_key_id']}",
        f"AWS_SECRET_ACCESS_KEY={keys['secret_access_key']}",
    ]
