"""The Redis users of the platform, as lines of a Redis ACL file (``aclfile``).

- Each team's user reaches only the keys and channels under its key prefix
  (settings.key_prefix): its queue, its results, and its workers' control and events. So a
  team cannot push a task onto another team's queue, or read, delete or wait on another
  team's results, or revoke or inspect another team's steps.
- The run launcher's user (in the daemon and the webserver) reaches every team's keys and
  channels, and nothing else: it sends each run to its team's run queue, reads its task's
  state, and asks or tells the team's workers (health, Terminate). Every team is reachable
  through one user, so a new team needs no change to the daemon or the webserver.
- Flower's user may only subscribe to every team's events, with the one pattern
  every_team_events.EVERY_TEAM matches, and keep its own unprefixed bookkeeping keys.
- ``default`` is the operator's: the health check and ``redis-cli``.

Redis checks a PSUBSCRIBE pattern against a user's channel patterns literally, not as a glob,
so each pattern the team's Celery subscribes to is listed as it is (worker control, events, and
the worker's own gossip), besides the glob that covers its plain channels (results).
Passwords are stored as SHA-256 (``#<hex>``), so the file holds no secret.
"""

import hashlib
import re
from urllib.parse import quote

from dagster_team_celery.settings import key_prefix

# Commands no team needs, that reach beyond its own keys: SCAN and RANDOMKEY list every
# team's key names, PUBSUB lists every channel, SCRIPT FLUSH drops every team's scripts.
# @dangerous holds FLUSHALL, FLUSHDB, KEYS, CONFIG, CLIENT KILL, MONITOR, DEBUG and the like.
COMMANDS = "-@all +@all -@dangerous -scan -randomkey -pubsub -script|flush"
# The team registry's NAME_PATTERN (registry/__init__.py), copied because neither can import
# the other: the registry is standard library only, outside any package (the Makefile runs it
# before the virtualenvs exist), and team images install this package without it.
# tests/test_consistency.py checks the two are the same. The name goes into key and channel
# patterns, where '*', '?' and '[' are glob characters: a team named 'bak*' would get
# '~team:bak*:*', bakery's keys included.
TEAM_NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{1,29}")
# Flower's inspect replies come back on <uuid>.reply.celery.pidbox lists. The pattern fixes
# a '-' at the ninth character, which no team key has (they start team:<identifier>:).
FLOWER_REPLY_KEYS = "~????????-????-????-????-????????????.reply.celery.pidbox*"
FLOWER_USER = "flower"
LAUNCHER_USER = "launcher"


def check_team_name(team: str) -> None:
    if not TEAM_NAME_PATTERN.fullmatch(team):
        raise ValueError(
            f"{team!r} is not a team name: a Redis user for it needs a name matching "
            f"{TEAM_NAME_PATTERN.pattern} (the team registry's), since it goes into Redis "
            "key and channel patterns."
        )


def team_user(team: str) -> str:
    check_team_name(team)
    return f"team_{team}"


def password_hash(password: str) -> str:
    if not password or any(character.isspace() for character in password):
        raise ValueError("A Redis password must be non-empty and hold no whitespace.")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def team_rule(team: str, password: str) -> str:
    user = team_user(team)  # refuses a name that would widen the patterns below
    prefix = key_prefix(team)
    channels = [
        f"&{prefix}*",
        f"&{prefix}/0.celery.pidbox",
        f"&{prefix}/0.celeryev/*",
        f"&{prefix}/0.celeryev/worker.*",
    ]
    return (
        f"user {user} on {password_hash(password)} resetkeys ~{prefix}* "
        f"resetchannels {' '.join(channels)} {COMMANDS}"
    )


def flower_rule(password: str) -> str:
    every_team_events = f"&{key_prefix('*')}/0.celeryev/*"
    own_keys = f"~_kombu.* ~celeryev.* ~unacked* {FLOWER_REPLY_KEYS}"
    return (
        f"user {FLOWER_USER} on {password_hash(password)} resetkeys {own_keys} "
        f"resetchannels {every_team_events} &/0.celery.pidbox {COMMANDS}"
    )


def launcher_rule(password: str) -> str:
    every_team = key_prefix("*")
    return (
        f"user {LAUNCHER_USER} on {password_hash(password)} resetkeys ~{every_team}* "
        f"resetchannels &{every_team}* {COMMANDS}"
    )


def admin_rule(password: str) -> str:
    return f"user default on {password_hash(password)} ~* &* +@all"


def acl_file(
    admin_password: str,
    flower_password: str,
    launcher_password: str,
    team_passwords: dict[str, str],
) -> str:
    lines = [
        admin_rule(admin_password),
        flower_rule(flower_password),
        launcher_rule(launcher_password),
    ]
    lines += [team_rule(team, password) for team, password in sorted(team_passwords.items())]
    return "\n".join(lines) + "\n"


def redis_url(user: str, password: str, host: str, port: int | str, db: int | None = None) -> str:
    """A URL logging in to Redis as ``user`` (``""``: the ``default`` user), the user and
    password URL-quoted; without ``db``, the base a database number is appended to."""
    base = f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
    return base if db is None else f"{base}/{db}"
