"""Create .env from .env.example, filling every empty secret with a random value.

An existing .env is kept; secrets it lacks (added to the template since) are appended.
"""

import re
import secrets
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD", "WANDB_IO_SIGNING_KEY")


def random_secret() -> str:
    # Hex only: the Redis password is embedded in URLs, where other characters need escaping.
    return secrets.token_hex(24)


def main(env_path: Path = REPO_ROOT / ".env", template: Path = REPO_ROOT / ".env.example") -> int:
    if env_path.exists():
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
    env_path.write_text("\n".join(lines) + "\n")
    env_path.chmod(0o600)
    print(f"created {env_path.name} with random secrets (mode 600, git-ignored)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
