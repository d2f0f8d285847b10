"""The Dagster UI's login: the proxy's users file (one `<user> <bcrypt hash>` line, read by
Caddy's basicauth), and the header the platform's own tools send with it."""

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


def still_matches(path: Path, user: str, password: str) -> bool:
    """Whether the file already holds this login, so `make env` need not rehash it."""
    # Imported here: the deploy scripts that only send the login run on the host's python3,
    # which has no bcrypt; `make env` runs in the platform's venv.
    import bcrypt

    try:
        name, hashed = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return False
    return name == user and bcrypt.checkpw(password.encode(), hashed.encode())


def write_users_file(path: Path, user: str, password: str) -> bool:
    """Write the login's hash unless the file already holds it; True when it was rewritten."""
    import bcrypt

    check_login(user, password)
    changed = not still_matches(path, user, password)
    if changed:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{user} {hashed}\n")
    # A hash only; the proxy, as uid 1000 in its container, must be able to read it.
    path.chmod(0o644)
    return changed


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
