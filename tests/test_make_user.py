"""`make user`: people's logins and roles beside the platform tools' admin login, which
`make env` keeps; bad input refused with the fix, and nothing lost."""

import bcrypt
import pytest
import yaml

from dagster_team_celery.ui_access.people import AccessList, Person
from scripts import make_env, make_user
from tests.repo import REPO_ROOT


@pytest.fixture
def keys(tmp_path, monkeypatch):
    env, trust = tmp_path / ".env", tmp_path / "keys" / "trusted-keys.json"
    make_env.main(env, REPO_ROOT / ".env.example", trust)
    monkeypatch.setattr(make_user, "KEYS", trust.parent)
    monkeypatch.setenv("UI_USER", "admin")
    return trust.parent


def logins(keys) -> dict[str, str]:
    return dict(line.split() for line in (keys / "ui-users").read_text().splitlines())


def test_make_env_makes_the_tools_login_an_admin(keys) -> None:
    access = AccessList.load(keys / "ui-access.yaml")
    assert access.person("admin") == Person("admin", "admin")


def test_a_person_gets_a_login_and_a_role_and_the_tools_keep_theirs(keys, capsys) -> None:
    tools_hash = logins(keys)["admin"]
    assert make_user.main(["alice", "--teams", "bakery,ml"]) == 0
    password = capsys.readouterr().out.split("password (shown once): ")[1].strip()
    assert bcrypt.checkpw(password.encode(), logins(keys)["alice"].encode())
    assert logins(keys)["admin"] == tools_hash
    access = AccessList.load(keys / "ui-access.yaml")
    assert access.person("alice") == Person("alice", "member", frozenset({"bakery", "ml"}))

    assert make_user.main(["vera", "--password", "given"]) == 0
    assert "shown once" not in capsys.readouterr().out
    assert AccessList.load(keys / "ui-access.yaml").person("vera") == Person("vera")
    # `make env` again (a new team, say) keeps every person.
    make_env.main(keys.parent / ".env", REPO_ROOT / ".env.example", keys / "trusted-keys.json")
    assert set(logins(keys)) == {"admin", "alice", "vera"}

    assert make_user.main(["alice", "--remove"]) == 0
    assert set(logins(keys)) == {"admin", "vera"}
    assert "alice" not in yaml.safe_load((keys / "ui-access.yaml").read_text())["users"]


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["alice", "--teams", "nosuchteam"], "TEAMS names no team: nosuchteam"),
        (["alice", "--role", "member"], "a member needs TEAMS"),
        (["alice", "--role", "admin", "--teams", "ml"], "only a member has TEAMS"),
        (["alice }\nrespond 200"], "is not a valid login name"),
        (["admin", "--role", "viewer"], "the platform tools' login"),
    ],
)
def test_bad_input_is_refused_with_the_fix_and_nothing_is_lost(keys, capsys, argv, problem):
    before = {name: (keys / name).read_text() for name in ("ui-users", "ui-access.yaml")}
    assert make_user.main(argv) == 2
    assert problem in capsys.readouterr().err
    assert {name: (keys / name).read_text() for name in before} == before
