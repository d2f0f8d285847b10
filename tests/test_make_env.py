"""`make env` never leaves secrets readable by other users of the host.

Before the fix, .env was written with the process umask (0644 here) and chmod-ed afterwards,
and an existing 0644 .env stayed 0644 while secrets were appended to it.
"""

import json
import os
import stat
from pathlib import Path

import pytest

from scripts import make_env
from tests.repo import REPO_ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_new_env_is_owner_only_from_its_creation(tmp_path, monkeypatch, permissive_umask):
    # With chmod skipped, only the mode given at creation protects the secrets.
    monkeypatch.setattr(Path, "chmod", lambda *args, **kwargs: None)
    env = tmp_path / ".env"

    make_env.main(env, REPO_ROOT / ".env.example", tmp_path / "trust.json")

    assert mode(env) == 0o600
    assert "REDIS_PASSWORD=" in env.read_text()


def test_an_existing_world_readable_env_is_made_owner_only_before_secrets_are_added(tmp_path):
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=kept\n")
    env.chmod(0o644)

    make_env.main(env, REPO_ROOT / ".env.example", tmp_path / "trust.json")

    assert mode(env) == 0o600
    text = env.read_text()
    assert "POSTGRES_PASSWORD=kept" in text
    assert "REDIS_PASSWORD=" in text


def made_env(tmp_path: Path) -> tuple[Path, Path, dict[str, str], list]:
    """`make env` run once into tmp_path: the env file, the trust file, its settings, the teams."""
    import registry

    env, trust = tmp_path / ".env", tmp_path / "keys" / "trusted-keys.json"
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    return env, trust, make_env.read_settings(env.read_text()), registry.teams(REPO_ROOT)


def test_every_team_gets_its_own_key_and_the_trust_file_names_its_entity(tmp_path):
    from dagster_wandb_io.keys import TrustStore, public_key_of

    env, trust, settings, teams = made_env(tmp_path)
    keys = {team.name: settings[team.signing_key_variable] for team in teams}
    assert len(set(keys.values())) == len(teams), "no two teams share a key"
    trusted = TrustStore.load(trust)
    for team in teams:
        assert trusted.teams[team.name].public_key.public_bytes_raw().hex() == public_key_of(
            keys[team.name]
        )
        assert trusted.owner_of(team.entity) == team.name
    assert "WANDB_IO_SIGNING_KEY_" not in trust.read_text(), "the trust file holds no private key"

    # A second run keeps every key: artifacts signed before stay verifiable.
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    assert make_env.read_settings(env.read_text()) == settings
    assert TrustStore.load(trust).teams.keys() == trusted.teams.keys()


def own_passwords(settings: dict[str, str], teams, variable: str) -> dict[str, str]:
    """Team -> its password in .env (``variable``: the Team property naming it), each its own."""
    passwords = {team.name: settings[getattr(team, variable)] for team in teams}
    assert len(set(passwords.values())) == len(teams), f"two teams share a {variable}"
    return passwords


def test_every_team_gets_its_own_redis_user_and_the_acl_file_holds_no_password(tmp_path):
    env, trust, settings, teams = made_env(tmp_path)
    passwords = own_passwords(settings, teams, "redis_password_variable")
    acl = tmp_path / "keys" / make_env.REDIS_USERS_FILE
    text = acl.read_text()
    for team in teams:
        assert f"user team_{team.name} on #" in text
    assert "user launcher on #" in text
    platform = ("REDIS_PASSWORD", "FLOWER_REDIS_PASSWORD", "LAUNCHER_REDIS_PASSWORD")
    secrets = [*passwords.values(), *(settings[name] for name in platform)]
    assert not any(secret in text for secret in secrets), "the ACL file holds hashes only"
    credentials = tmp_path / "keys" / make_env.TEAM_REDIS_FILE
    assert mode(credentials) == 0o600
    assert json.loads(credentials.read_text()) == passwords

    # A second run keeps every password, and rewrites the ACL file in place: Redis has it
    # bind-mounted, and a replaced file would never reach the running server.
    inode = acl.stat().st_ino
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    assert make_env.read_settings(env.read_text()) == settings
    assert acl.stat().st_ino == inode
    assert acl.read_text() == text


def test_every_team_gets_its_own_postgres_role_and_the_roles_script_holds_no_password(tmp_path):
    env, trust, settings, teams = made_env(tmp_path)
    passwords = own_passwords(settings, teams, "postgres_password_variable")
    script = tmp_path / "keys" / make_env.POSTGRES_ROLES_FILE
    text = script.read_text()
    for team in teams:
        assert f"CREATE ROLE team_{team.name} WITH LOGIN NOSUPERUSER" in text
        assert f"('{team.entity}', 'team_{team.name}')" in text  # the index rows it may write
    secrets = [*passwords.values(), settings["POSTGRES_PASSWORD"]]
    assert not any(secret in text for secret in secrets), "SCRAM verifiers only"
    credentials = tmp_path / "keys" / make_env.TEAM_POSTGRES_FILE
    assert mode(credentials) == 0o600
    assert json.loads(credentials.read_text()) == passwords
    # The same script again (salts follow the passwords): Swarm, whose configs are named by
    # their content, re-runs init only when a role changes.
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    assert script.read_text() == text


def test_every_team_gets_its_own_object_store_identity_in_owner_only_files(tmp_path):
    _env, _trust, settings, teams = made_env(tmp_path)
    secrets = own_passwords(settings, teams, "object_store_secret_variable")
    identities = tmp_path / "keys" / make_env.OBJECT_STORE_IDENTITIES_FILE
    assert mode(identities) == 0o600, "it holds every secret key"
    found = {i["name"]: i for i in json.loads(identities.read_text())["identities"]}
    assert (
        found["webserver"]["credentials"][0]["secretKey"]
        == settings["OBJECT_STORE_WEBSERVER_SECRET_ACCESS_KEY"]
    )
    for team in teams:
        identity = found[f"team_{team.name}"]
        assert identity["credentials"] == [
            {"accessKey": f"team_{team.name}", "secretKey": secrets[team.name]}
        ]
        assert f"Write:mlplatform/step-outputs/{team.name}/*" in identity["actions"]
    assert settings["OBJECT_STORE_SECRET_ACCESS_KEY"] not in identities.read_text()
    credentials = tmp_path / "keys" / make_env.TEAM_OBJECT_STORE_FILE
    assert mode(credentials) == 0o600
    assert json.loads(credentials.read_text()) == {
        team: {"access_key_id": f"team_{team}", "secret_access_key": secret}
        for team, secret in secrets.items()
    }


def test_the_ui_login_reaches_its_proxy_as_a_bcrypt_hash_that_is_kept_while_it_matches(tmp_path):
    import bcrypt

    env, trust = tmp_path / ".env", tmp_path / "keys" / "trusted-keys.json"
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    password = make_env.read_settings(env.read_text())["UI_PASSWORD"]
    users = tmp_path / "keys" / make_env.UI_USERS_FILE
    user, hashed = users.read_text().split()
    assert user == "admin" and password not in users.read_text()
    assert bcrypt.checkpw(password.encode(), hashed.encode())

    make_env.main(env, REPO_ROOT / ".env.example", trust)
    assert users.read_text().split() == [user, hashed], "an unchanged login is not rehashed"

    # A new password (edited in .env) gets a new hash on the next run.
    env.write_text(env.read_text().replace(f"UI_PASSWORD={password}", "UI_PASSWORD=changed"))
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    assert bcrypt.checkpw(b"changed", users.read_text().split()[1].encode())


@pytest.mark.parametrize(
    "hostile", ["admin }\nrespond 200", "admin\nroot $2b$12$forged", "{$UI_PASSWORD}", ""]
)
def test_a_ui_user_that_would_rewrite_the_proxys_configuration_is_refused(tmp_path, hostile):
    # The attack: the user name is written into Caddy's configuration; a brace, a space or a
    # newline in it would add directives (or a second user) of the writer's choosing.
    env, trust = tmp_path / ".env", tmp_path / "keys" / "trusted-keys.json"
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    users = tmp_path / "keys" / make_env.UI_USERS_FILE
    before = users.read_text()
    with pytest.raises(ValueError, match=r"UI_USER=.* is not a valid login name.*fix it in \.env"):
        make_env.ui_login.write_users_file(users, hostile, "a-password")
    assert users.read_text() == before, "nothing is lost"
