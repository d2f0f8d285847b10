"""Read the settings docker compose reads: the environment first, then .env."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The scripts run as plain files (`python3 scripts/x.py`); this lets them import the team
# registry (registry/, standard library only) from the same checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))


def setting(name: str, default: str, env_file: Path = REPO_ROOT / ".env") -> str:
    if os.environ.get(name):
        return os.environ[name]
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name and value.strip():
                return value.strip()
    return default
