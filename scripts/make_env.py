"""Create .env from .env.example, filling every empty secret with a random value.

An existing .env is kept; secrets it lacks (added to the template since, or a new team's
signing key) are appended. The file is created owner-only (0600) atomically, and an existing
one that others could read is made owner-only before anything is added to it.

Each team gets its own Ed25519 signing key in .env (only that team's services are given it),
and keys/trusted-keys.json is rewritten from the team registry: every team's public key and
the W&B entity it owns, which every team's code reads.

Each team also gets its own Redis user's password in .env, and two files are rewritten from
the registry: keys/redis-users.acl, the Redis ACL file (hashed passwords only, so it may be
readable), and keys/team-redis.json (owner-only), which the daemon reads with container runs
(docker-compose.container-runs.yml) to give each run container its own team's broker user.

Each team also gets its own Postgres role's password in .env: keys/postgres-roles.sql, the
script `init` applies to create or update the teams' roles (SCRAM verifiers only), and
keys/team-postgres.json (owner-only), for container runs as team-redis.json is.

Each team also gets its own object-store secret key in .env: keys/object-store-identities.json
(the bundled store's identities: each team confined to its own folders and entities, and the
webserver's, which only reads logs; owner-only, as it holds the secret keys) and
keys/team-object-store.json (owner-only), for container runs as team-redis.json is.

The UI's login for the platform's own tools is written to keys/ui-users: UI_USER and a bcrypt
hash of UI_PASSWORD, which the UI's proxy reads (the hash is kept while the password still
matches it), and UI_USER is an admin in keys/ui-access.yaml. People's logins (`make user`) are
kept.
"""

import argparse
import json
import os
import re
import secrets
import stat
import sys
from pathlib import Path

import registry
from dagster_team_celery.deploy import object_store_identities, postgres_roles, redis_acl
from dagster_wandb_io.keys import provision_team_keys, write_private
from scripts import ui_login
from scripts.envfile import REPO_ROOT

SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "FLOWER_PASSWORD",
    "FLOWER_REDIS_PASSWORD",
    "LAUNCHER_REDIS_PASSWORD",
    "UI_PASSWORD",
    "OBJECT_STORE_ACCESS_KEY_ID",
    "OBJECT_STORE_SECRET_ACCESS_KEY",
    "OBJECT_STORE_WEBSERVER_SECRET_ACCESS_KEY",
)
TRUST_FILE = REPO_ROOT / "keys" / "trusted-keys.json"
REDIS_USERS_FILE = "redis-users.acl"
TEAM_REDIS_FILE = "team-redis.json"
POSTGRES_ROLES_FILE = "postgres-roles.sql"
TEAM_POSTGRES_FILE = "team-postgres.json"
OBJECT_STORE_IDENTITIES_FILE = "object-store-identities.json"
TEAM_OBJECT_STORE_FILE = "team-object-store.json"
UI_USERS_FILE = "ui-users"
UI_ACCESS_FILE = "ui-access.yaml"


def random_secret() -> str:
    # Hex only: the Redis password is embedded in URLs, where other characters need escaping.
    return secrets.token_hex(24)


OWNER_ONLY = 0o600


def make_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(OWNER_ONLY)
        print(f"{path.name} was readable by others (mode {mode:o}); now {OWNER_ONLY:o}")


def read_settings(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.+)$", text, re.M))


def trust_file_of(env_path: Path, default: Path) -> Path:
    """Where compose reads the trust file: in KEYS_DIR, if the env file sets it (relative to
    the project folder, as compose reads it). The other files made here go next to it."""
    settings = read_settings(env_path.read_text())
    if "TRUSTED_KEYS_FILE" in settings:
        raise ValueError(
            f"{env_path.name} sets TRUSTED_KEYS_FILE, which is no longer read: replace it with "
            "KEYS_DIR=<the folder holding trusted-keys.json>"
        )
    configured = settings.get("KEYS_DIR")
    return REPO_ROOT / configured / TRUST_FILE.name if configured else default


def sign_keys(env_path: Path, trust_file: Path, root: Path = REPO_ROOT) -> None:
    """Give every registered team a signing key in .env, and rewrite the trust file."""
    teams = registry.teams(root)
    present = read_settings(env_path.read_text())
    existing = {
        t.name: present[t.signing_key_variable] for t in teams if t.signing_key_variable in present
    }
    private = provision_team_keys(trust_file, {t.name: [t.entity] for t in teams}, existing)
    added = [t for t in teams if t.name not in existing]
    if added:
        with env_path.open("a") as env_file:
            for team in added:
                env_file.write(f"{team.signing_key_variable}={private[team.name]}\n")
        print(f"{env_path.name}: added signing keys for {', '.join(t.name for t in added)}")


def rewrite_in_place(path: Path, text: str, mode: int) -> None:
    """Rewrite ``path`` keeping its inode: a file bind-mounted into a running container (the
    ACL file into Redis) shows the new content only then. A new file gets ``mode`` from open(2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(descriptor, mode)
    with os.fdopen(descriptor, "w") as rewritten:
        rewritten.write(text)


def team_passwords(env_path: Path, variables: dict[str, str], what: str) -> dict[str, str]:
    """Each team's password from .env (``variables``: team -> its .env variable), a random one
    appended for a team that has none yet."""
    present = read_settings(env_path.read_text())
    added = [team for team, variable in variables.items() if variable not in present]
    if added:
        with env_path.open("a") as env_file:
            for team in added:
                present[variables[team]] = random_secret()
                env_file.write(f"{variables[team]}={present[variables[team]]}\n")
        print(f"{env_path.name}: added {what} passwords for {', '.join(added)}")
    return {team: present[variable] for team, variable in variables.items()}


def team_redis_users(env_path: Path, keys_dir: Path, root: Path = REPO_ROOT) -> None:
    """Give every registered team a Redis password in .env, and rewrite the ACL file and the
    daemon's file of team credentials from them."""
    teams = registry.teams(root)
    passwords = team_passwords(
        env_path, {t.name: t.redis_password_variable for t in teams}, "Redis"
    )
    present = read_settings(env_path.read_text())
    users = redis_acl.acl_file(
        present["REDIS_PASSWORD"],
        present["FLOWER_REDIS_PASSWORD"],
        present["LAUNCHER_REDIS_PASSWORD"],
        passwords,
    )
    # Hashes only; the redis user in its container must be able to read it.
    rewrite_in_place(keys_dir / REDIS_USERS_FILE, users, 0o644)
    rewrite_in_place(keys_dir / TEAM_REDIS_FILE, json.dumps(passwords, indent=1) + "\n", 0o600)


def team_postgres_roles(env_path: Path, keys_dir: Path, root: Path = REPO_ROOT) -> None:
    """Give every registered team its own Postgres role's password in .env, and rewrite the
    roles script that `init` applies (verifiers only) and the daemon's file of them."""
    teams = registry.teams(root)
    passwords = team_passwords(
        env_path, {t.name: t.postgres_password_variable for t in teams}, "Postgres"
    )
    present = read_settings(env_path.read_text())
    script = postgres_roles.roles_script(
        present.get("POSTGRES_USER") or "dagster",
        present.get("POSTGRES_DB") or "dagster",
        passwords,
        {t.name: [t.entity] for t in teams},
        postgres_roles.connection_limit(present),
    )
    # Verifiers only; init's user in its container must be able to read it.
    rewrite_in_place(keys_dir / POSTGRES_ROLES_FILE, script, 0o644)
    rewrite_in_place(keys_dir / TEAM_POSTGRES_FILE, json.dumps(passwords, indent=1) + "\n", 0o600)


def team_object_store_identities(env_path: Path, keys_dir: Path, root: Path = REPO_ROOT) -> None:
    """Give every registered team its own object-store secret key in .env, and rewrite the
    bundled store's identities file and the daemon's file of them (both secret: owner-only)."""
    teams = registry.teams(root)
    secrets_by_team = team_passwords(
        env_path, {t.name: t.object_store_secret_variable for t in teams}, "object store"
    )
    present = read_settings(env_path.read_text())
    identities = object_store_identities.team_identities(
        secrets_by_team,
        {t.name: [t.entity] for t in teams},
        {t.name: present.get(t.object_store_access_key_variable, "") for t in teams},
    )
    document = object_store_identities.seaweedfs_identities(
        present.get("OBJECT_STORE_BUCKET") or "mlplatform",
        identities,
        present["OBJECT_STORE_WEBSERVER_SECRET_ACCESS_KEY"],
    )
    rewrite_in_place(keys_dir / OBJECT_STORE_IDENTITIES_FILE, document, OWNER_ONLY)
    keys = {
        team: {"access_key_id": i.access_key, "secret_access_key": i.secret_key}
        for team, i in identities.items()
    }
    rewrite_in_place(
        keys_dir / TEAM_OBJECT_STORE_FILE, json.dumps(keys, indent=1) + "\n", OWNER_ONLY
    )


def write_derived_files(env_path: Path, trust_file: Path, root: Path) -> None:
    """Every file made from .env and the registry, next to the trust file."""
    trust_file = trust_file_of(env_path, trust_file)
    sign_keys(env_path, trust_file, root)
    team_redis_users(env_path, trust_file.parent, root)
    team_postgres_roles(env_path, trust_file.parent, root)
    team_object_store_identities(env_path, trust_file.parent, root)
    settings = read_settings(env_path.read_text())
    tools = settings.get("UI_USER", ui_login.DEFAULT_USER)
    if ui_login.write_users_file(trust_file.parent / UI_USERS_FILE, tools, settings["UI_PASSWORD"]):
        print(
            f"{UI_USERS_FILE}: wrote the UI login's hash; a running proxy reads it after "
            "`docker compose restart ui`"
        )
    # The tools (`make up`, `make redeploy`, the bench) reload the workspace: an admin's.
    if ui_login.set_role(trust_file.parent / UI_ACCESS_FILE, tools, "admin"):
        print(f"{UI_ACCESS_FILE}: {tools}, the platform tools' login, is an admin")


def main(
    env_path: Path = REPO_ROOT / ".env",
    template: Path = REPO_ROOT / ".env.example",
    trust_file: Path = TRUST_FILE,
    root: Path = REPO_ROOT,
) -> int:
    if env_path.exists():
        # Before a secret is appended: an existing .env may have been created world-readable.
        make_private(env_path)
        existing = env_path.read_text()
        present = set(read_settings(existing))
        missing = [name for name in SECRETS if name not in present]
        if missing:
            with env_path.open("a") as env_file:
                for name in missing:
                    env_file.write(f"\n{name}={random_secret()}\n")
            print(f"{env_path.name}: added random {', '.join(missing)}")
        write_derived_files(env_path, trust_file, root)
        return 0
    lines = []
    for line in template.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRETS and not value:
            line = f"{name}={random_secret()}"
        lines.append(line)
    write_private(env_path, "\n".join(lines) + "\n")
    write_derived_files(env_path, trust_file, root)
    print(f"created {env_path.name} with random secrets (mode 600, git-ignored)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=REPO_ROOT / ".env")
    try:
        sys.exit(main(parser.parse_args().env_file))
    except ValueError as error:
        print(f"make env: {error}", file=sys.stderr)
        sys.exit(1)
