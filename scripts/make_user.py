"""`make user`: give a person a login to the Dagster UI and a role.

    make user NAME=alice TEAMS=bakery        # a member of the bakery (TEAMS=bakery,ml: of both)
    make user NAME=vera                      # a viewer: reads everything, changes nothing
    make user NAME=olga ROLE=admin           # everything, the instance's settings included
    make user NAME=alice REMOVE=1            # no login, no role

The password is PASSWORD if given, otherwise a random one printed once. The login's bcrypt
hash goes to keys/ui-users (the proxy reads it after `docker compose restart ui`), the role to
keys/ui-access.yaml (the webserver reads it at once). With UI_AUTH=forward, people sign in with
the sign-in service instead: give their groups roles under `groups:` in keys/ui-access.yaml.
"""

import argparse
import secrets
import sys

import registry
from dagster_team_celery.ui_access.people import ROLES
from scripts import ui_login
from scripts.envfile import REPO_ROOT, setting
from scripts.make_env import UI_ACCESS_FILE, UI_USERS_FILE

KEYS = REPO_ROOT / "keys"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make user", description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--teams", default="", help="comma-separated: the teams of a member")
    parser.add_argument("--role", choices=ROLES, help="default: member with --teams, else viewer")
    parser.add_argument("--password", default="", help="default: a random one, printed once")
    parser.add_argument("--remove", action="store_true")
    return parser.parse_args(argv)


def role_and_teams(args: argparse.Namespace) -> tuple[str, list[str]]:
    teams = [team.strip() for team in args.teams.split(",") if team.strip()]
    role = args.role or ("member" if teams else "viewer")
    known = {team.name for team in registry.teams(REPO_ROOT)}
    if unknown := sorted(set(teams) - known):
        raise ValueError(f"TEAMS names no team: {', '.join(unknown)} (teams: {sorted(known)})")
    if role == "member" and not teams:
        raise ValueError("a member needs TEAMS, such as TEAMS=bakery")
    if role != "member" and teams:
        raise ValueError(f"only a member has TEAMS; drop TEAMS or ROLE={role}")
    return role, teams


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = setting("UI_USER", ui_login.DEFAULT_USER)
    try:
        if not ui_login.USER_NAME.fullmatch(args.name):
            raise ValueError(
                f"NAME={args.name!r} is not a valid login name: use letters, digits and . _ @ - "
                "(at most 64, starting with a letter or digit)"
            )
        if args.name == tools:
            raise ValueError(f"{tools} is the platform tools' login (UI_USER); `make env` keeps it")
        if args.remove:
            logins = ui_login.read_logins(KEYS / UI_USERS_FILE)
            logins.pop(args.name, None)
            ui_login.write_logins(KEYS / UI_USERS_FILE, logins)
            ui_login.set_role(KEYS / UI_ACCESS_FILE, args.name, None)
            print(f"{args.name}: removed; `docker compose restart ui` ends their login")
            return 0
        role, teams = role_and_teams(args)
        password = args.password or secrets.token_urlsafe(18)
        ui_login.write_users_file(KEYS / UI_USERS_FILE, args.name, password)
    except ValueError as error:
        print(f"make user: {error}", file=sys.stderr)
        return 2
    ui_login.set_role(KEYS / UI_ACCESS_FILE, args.name, role, teams)
    what = f"member of {', '.join(teams)}" if teams else role
    print(f"{args.name}: {what}; run `docker compose restart ui` for a new login to work")
    if not args.password:
        print(f"password (shown once): {password}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
