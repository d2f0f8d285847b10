"""The people who use the UI, their teams and roles, from the access file (keys/ui-access.yaml).

The login proxy tells the webserver who signed in, in two headers it sets itself and never lets
a client send: ``X-Platform-User`` (basic auth's user, or the sign-in service's) and, with
UI_AUTH=forward, ``X-Platform-Groups`` (the sign-in service's groups, comma-separated).

Roles, from least to most:

- ``viewer``: reads everything, changes nothing. Anyone signed in whom the file does not name.
- ``member`` of teams: also launches, re-executes, backfills, terminates and deletes those teams'
  runs, starts and stops their schedules and sensors, and reloads their code locations.
- ``admin``: everything, including what no team owns (the workspace, pools, auto-materialize).

A user's entry and the entries of each of their groups add up: the highest role wins, and the
teams are those of every entry that makes them a member.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dagster_team_celery.deploy.redis_acl import TEAM_NAME_PATTERN

USER_HEADER = "X-Platform-User"
GROUPS_HEADER = "X-Platform-Groups"
ROLES = ("viewer", "member", "admin")
# The names a login may have (scripts/ui_login.py); teams' are the registry's.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
logger = logging.getLogger(__name__)


class AccessFileError(ValueError):
    pass


@dataclass(frozen=True)
class Person:
    user: str
    role: str = "viewer"
    teams: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def describe(self) -> str:
        if self.role == "member":
            return f"{self.user} (member of {', '.join(sorted(self.teams))})"
        return f"{self.user} ({self.role})"


@dataclass(frozen=True)
class Grant:
    role: str
    teams: frozenset[str]


def parse_grant(where: str, entry: object) -> Grant:
    if not isinstance(entry, Mapping):
        raise AccessFileError(f"{where}: expected a mapping such as {{role: member, teams: [ml]}}")
    unknown = set(entry) - {"role", "teams"}
    if unknown:
        raise AccessFileError(f"{where}: unknown keys {sorted(unknown)}; use role and teams")
    role = entry.get("role", "viewer")
    if role not in ROLES:
        raise AccessFileError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    teams = entry.get("teams") or []
    if not isinstance(teams, list) or not all(
        isinstance(team, str) and TEAM_NAME_PATTERN.fullmatch(team) for team in teams
    ):
        raise AccessFileError(f"{where}: teams must be a list of team names, such as [bakery]")
    if role == "member" and not teams:
        raise AccessFileError(f"{where}: a member needs teams, such as teams: [bakery]")
    if role != "member" and teams:
        raise AccessFileError(f"{where}: only a member has teams (this one is {role})")
    return Grant(role, frozenset(teams))


def parse_grants(path: Path, data: Mapping, section: str) -> dict[str, Grant]:
    entries = data.get(section) or {}
    if not isinstance(entries, Mapping):
        raise AccessFileError(f"{path}: {section} must be a mapping of names to grants")
    grants = {}
    for name, entry in entries.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise AccessFileError(f"{path}: {section}: {name!r} is not a valid name")
        grants[name] = parse_grant(f"{path}: {section}.{name}", entry)
    return grants


@dataclass(frozen=True)
class AccessList:
    users: Mapping[str, Grant]
    groups: Mapping[str, Grant]

    @classmethod
    def load(cls, path: Path) -> "AccessList":
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise AccessFileError(
                f"{path} does not exist: run `make env` (it writes the tools' admin entry), "
                "then `make user` for each person"
            ) from None
        except yaml.YAMLError as error:
            raise AccessFileError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, Mapping) or set(data) - {"users", "groups"}:
            raise AccessFileError(f"{path}: expected only the keys users and groups")
        return cls(parse_grants(path, data, "users"), parse_grants(path, data, "groups"))

    def person(self, user: str | None, groups: str | None = None) -> Person | None:
        """Who the proxy says signed in; None when it says nobody did."""
        if not user:
            return None
        grants = [self.users[user]] if user in self.users else []
        for group in (groups or "").split(","):
            if group.strip() in self.groups:
                grants.append(self.groups[group.strip()])
        role = max((grant.role for grant in grants), key=ROLES.index, default="viewer")
        teams = frozenset().union(*(g.teams for g in grants)) if role == "member" else frozenset()
        return Person(user, role, teams)


class AccessFile:
    """The access file, read again whenever it changes: `make user` needs no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._access = AccessList.load(path)

    def current(self) -> AccessList:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return self._access  # a file being replaced; the last one read still holds
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._stamp:
            try:
                self._access, self._stamp = AccessList.load(self.path), stamp
            except AccessFileError as error:
                # A broken edit keeps the last good list (nobody gains a right by it), and is
                # reported at each request until it is fixed.
                logger.error("keeping the last valid access list: %s", error)
        return self._access

    def person(self, headers: Mapping[str, str]) -> Person | None:
        return self.current().person(headers.get(USER_HEADER), headers.get(GROUPS_HEADER))
