"""The Dagster UI's logins and roles: the proxy's users file (a `<user> <bcrypt hash>` line per
login, read by Caddy's basicauth), the access file (keys/ui-access.yaml: each person's role and
teams, read by the webserver; dagster_team_celery/ui_access/people.py), and the header the
platform's own tools send with their login (UI_USER, an admin service account)."""

import base64
import re
from pathlib import Path

DEFAULT_USER = "admin"
# The name is written into the proxy's configuration, where a space, a brace or a newline
# would start a directive of the writer's choosing.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# bcrypt reads no further; bcrypt 5 refuses a longer password rather than cut it silently.
MAX_PASSWORD_BYTES = 72
# Caddy remembers a checked password, so the cost is paid once per password, not per request.
BCRYPT_ROUNDS = 12


def check_login(user: str, password: str) -> None:
    if not USER_NAME.fullmatch(user):
        raise ValueError(
            f"UI_USER={user!r} is not a valid login name: use letters, digits and . _ @ - "
            "(at most 64, starting with a letter or digit); fix it in .env"
        )
    if not password:
        raise ValueError("UI_PASSWORD is empty: remove the line from .env and run `make env`")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"UI_PASSWORD is longer than bcrypt's {MAX_PASSWORD_BYTES} bytes: choose a shorter "
            "one in .env, or remove the line and run `make env` for a random one"
        )


def read_logins(path: Path) -> dict[str, str]:
    """Each login's bcrypt hash, in the file's order."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(maxsplit=1) for line in lines if line.strip())


def write_logins(path: Path, logins: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{user} {hashed}\n" for user, hashed in logins.items()))
    # Hashes only; the proxy, as uid 1000 in its container, must be able to read them.
    path.chmod(0o644)


def write_users_file(path: Path, user: str, password: str) -> bool:
    """Write the login's hash unless the file already holds it, keeping every other login;
    True when it was rewritten."""
    # Imported here: the deploy scripts that only send the login run on the host's python3,
    # which has no bcrypt; `make env` and `make user` run in the platform's venv.
    import bcrypt

    check_login(user, password)
    logins = read_logins(path)
    hashed = logins.get(user, "")
    changed = not (hashed and bcrypt.checkpw(password.encode(), hashed.encode()))
    if changed:
        logins[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    write_logins(path, logins)
    return changed


ACCESS_HEADER = """\
# Who may do what in the Dagster UI (README, "Roles in the UI"), read by the webserver whenever
# it changes. Written by `make env` (the platform tools' admin login, UI_USER) and `make user`.
#   users:  a login's role: viewer, member (with teams), or admin
#   groups: with UI_AUTH=forward, the role of each group the sign-in service sends
"""


def read_access(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        data = {}
    return {"users": data.get("users") or {}, "groups": data.get("groups") or {}}


def set_role(path: Path, user: str, role: str | None, teams: list[str] = ()) -> bool:
    """Give the login a role (None removes it); True when the file changed."""
    import yaml

    access = read_access(path)
    grant = {"role": role, **({"teams": sorted(teams)} if teams else {})}
    if role is None:
        if access["users"].pop(user, None) is None and path.exists():
            return False
    elif access["users"].get(user) == grant and path.exists():
        return False
    else:
        access["users"][user] = grant
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(access, default_flow_style=None, sort_keys=False)
    path.write_text(ACCESS_HEADER + body)
    path.chmod(0o644)  # names and roles only; the webserver's container user reads it
    return True


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
