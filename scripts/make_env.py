"""Create .env from .env.example, filling every empty secret with a random value.

An existing .env is kept; secrets it lacks (added to the template since) are appended. The
file is created owner-only (0600) atomically, and an existing one that others could read is
made owner-only before anything is added to it.
"""

import os
import re
import secrets
import stat
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD", "WANDB_IO_SIGNING_KEY")


def random_secret() -> str:
    # Hex only: the Redis password is embedded in URLs, where other characters need escaping.
    return secrets.token_hex(24)


OWNER_ONLY = 0o600


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only from the first byte: the mode is given to
    open(2), so no moment exists where another user could read it (and the umask can only
    take bits away)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    with os.fdopen(descriptor, "w") as env_file:
        env_file.write(text)


def make_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(OWNER_ONLY)
        print(f"{path.name} was readable by others (mode {mode:o}); now {OWNER_ONLY:o}")


def main(env_path: Path = REPO_ROOT / ".env", template: Path = REPO_ROOT / ".env.example") -> int:
    if env_path.exists():
        # Before a secret is appended: an existing .env may have been created world-readable.
        make_private(env_path)
        existing = env_path.read_text()
        present = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=.+$", existing, re.M))
        missing = [name for name in SECRETS if name not in present]
        if missing:
            with env_path.open("a") as env_file:
                for name in missing:
                    env_file.write(f"\n{name}={random_secret()}\n")
            print(f"{env_path.name}: added random {', '.join(missing)}")
        return 0
    lines = []
    for line in template.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRETS and not value:
            line = f"{name}={random_secret()}"
        lines.append(line)
    write_private(env_path, "\n".join(lines) + "\n")
    print(f"created {env_path.name} with random secrets (mode 600, git-ignored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
