"""Cold start of the compose stack with prebuilt images: `up -d` to every service healthy."""

import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import footprint
from devstack.config import REPO_ROOT, teams
from devstack.stack import free_port

SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_PASSWORD")


def compose_command() -> list[str]:
    """Compose v2 when present, else docker-compose 1.29, as the Makefile chooses."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if v2.returncode == 0 else ["docker-compose"]


def cold_start() -> dict:
    name = f"mlp-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as scratch:
        env_file = Path(scratch) / "bench.env"
        settings = {
            **{secret: secrets.token_hex(16) for secret in SECRETS},
            # Its own keys and users: the developer's keys/ is left alone.
            "KEYS_DIR": scratch,
            "PLATFORM_NAME": name,
            "WEBSERVER_PORT": str(free_port()),
            "FLOWER_PORT": str(free_port()),
            "DOCKER_SOCKET": os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"),
        }
        env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        subprocess.run(
            [sys.executable, "scripts/make_env.py", "--env-file", str(env_file)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        compose = [*compose_command(), "-p", name, "--env-file", str(env_file)]
        # As `make build`: one image at a time, the platform's first.
        for service in ("init", "ui", *(f"{t}-code" for t in teams())):
            subprocess.run(
                [*compose, "build", service], cwd=REPO_ROOT, check=True, capture_output=True
            )
        try:
            started = time.monotonic()
            subprocess.run([*compose, "up", "-d"], cwd=REPO_ROOT, check=True, capture_output=True)
            subprocess.run(
                [sys.executable, "scripts/wait_healthy.py", "--compose", shlex.join(compose)],
                cwd=REPO_ROOT,
                check=True,
                capture_output=True,
            )
            seconds = round(time.monotonic() - started, 1)
            time.sleep(10)
            pss = footprint.container_footprint(compose)
        finally:
            subprocess.run([*compose, "down", "-v"], cwd=REPO_ROOT, capture_output=True)
    return {"seconds_to_healthy": seconds, "idle_pss_mib": pss}
