"""The UI proxy's users file: one `<user> <bcrypt hash>` line, read by Caddy's basicauth."""

import re
from pathlib import Path

import bcrypt

DEFAULT_USER = "admin"
# The name is written into the proxy's configuration, where a space, a brace or a newline
# would start a directive of the writer's choosing.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Caddy caches a checked password, so the cost is paid once per password, not per request.
BCRYPT_ROUNDS = 12


def users_line(user: str, password: str) -> str:
    if not USER_NAME.fullmatch(user):
        raise ValueError(
            f"UI_USER={user!r} is not a valid login name: use letters, digits and . _ @ - "
            "(at most 64, starting with a letter or digit); fix it in .env"
        )
    if not password:
        raise ValueError("UI_PASSWORD is empty: remove the line from .env and run `make env`")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
    return f"{user} {hashed}\n"


def still_matches(path: Path, user: str, password: str) -> bool:
    """Whether the file already holds this login, so `make env` need not rehash it."""
    try:
        name, hashed = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return False
    return name == user and bcrypt.checkpw(password.encode(), hashed.encode())


def write_users_file(path: Path, user: str, password: str) -> None:
    if still_matches(path, user, password):
        return
    line = users_line(user, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hash only; the proxy, as uid 1000 in its container, must be able to read it.
    path.write_text(line)
    path.chmod(0o644)
