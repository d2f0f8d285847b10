"""Read the settings docker compose reads: the environment first, then .env."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def setting(name: str, default: str, env_file: Path = REPO_ROOT / ".env") -> str:
    if os.environ.get(name):
        return os.environ[name]
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name and value.strip():
                return value.strip()
    return default
