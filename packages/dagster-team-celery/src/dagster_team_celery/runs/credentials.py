"""The broker credentials the launcher gives a run container: its own team's Redis user's.

The daemon reads every team's Redis password from one owner-only file (``make env`` writes
keys/team-redis.json; compose mounts it as a secret), because the daemon launches every team's
runs. The run's team is its code location, which the daemon takes from the workspace, never
from anything the team's code server says. The credentials go into the container's
environment at launch only; no run record holds them.
"""

import json
import os
from pathlib import Path

from dagster_team_celery.deploy import redis_acl
from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, PlatformConfigError

TEAM_REDIS_CREDENTIALS_ENV = "DAGSTER_TEAM_REDIS_CREDENTIALS"
RUN_REDIS_ADDRESS_ENV = "DAGSTER_RUN_REDIS_ADDRESS"
DEFAULT_RUN_REDIS_ADDRESS = "redis:6379"


def team_passwords() -> dict[str, str]:
    raw_path = os.environ.get(TEAM_REDIS_CREDENTIALS_ENV, "").strip()
    if not raw_path:
        return {}
    path = Path(raw_path)
    try:
        passwords = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PlatformConfigError(
            f"Cannot read the teams' Redis credentials from {path} ({TEAM_REDIS_CREDENTIALS_ENV}):"
            f" {error}. Run `make env`, which writes keys/team-redis.json."
        ) from error
    if not isinstance(passwords, dict):
        raise PlatformConfigError(f"{path} must map team names to Redis passwords; run `make env`.")
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
