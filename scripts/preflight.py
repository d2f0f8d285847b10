"""What each `make` command needs from this machine, checked before it creates anything.

`make up`, `make dev`, `make test` and `make bench` run this first (`python3 -m scripts.preflight
<command>`), so a missing tool is named with the command that installs it, instead of surfacing
as `command not found` halfway through, after `.env` or a venv was already made. Standard library
only: it runs before any venv exists. `make doctor` prints every check for every command.
"""

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Where Debian's PostgreSQL packages put initdb and postgres (not on PATH); POSTGRES_BIN_DIR
# names another folder (macOS: `brew --prefix postgresql@15`/bin).
POSTGRES_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ENGINE_TIMEOUT_SECONDS = 20


@dataclass
class Missing:
    """One thing a command needs and this machine lacks, with how to get it."""

    what: str
    debian: str
    macos: str
    hint: str = ""

    def render(self) -> str:
        lines = [f"  - {self.what}", f"      Debian: {self.debian}", f"      macOS:  {self.macos}"]
        if self.hint:
            lines.append(f"      {self.hint}")
        return "\n".join(lines)


Check = Callable[[], Missing | None]


def run_quietly(*command: str) -> subprocess.CompletedProcess | None:
    """The command's result, or None when it cannot be started or does not answer."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=ENGINE_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def postgres_bin(name: str) -> Path | None:
    """As devstack/infra.py finds it: in POSTGRES_BIN_DIR alone when set, else in Debian's
    folders, then on PATH."""
    if os.environ.get("POSTGRES_BIN_DIR"):
        chosen = Path(os.environ["POSTGRES_BIN_DIR"]) / name
        return chosen if chosen.exists() else None
    for directory in POSTGRES_BIN_DIRS:
        if (directory / name).exists():
            return directory / name
    found = shutil.which(name)
    return Path(found) if found else None


def python_311() -> Missing | None:
    # The venvs are Python 3.11 (pyproject.toml) and uv may not download one (the Makefile's
    # UV_PYTHON_DOWNLOADS=never): an interpreter must be on the machine.
    if shutil.which("python3.11") or sys.version_info[:2] == (3, 11):
        return None
    return Missing(
        f"Python 3.11 (the platform's venvs use it; found only {sys.version.split()[0]})",
        "apt-get install python3 python3-venv   (Debian 12 ships 3.11)",
        "brew install python@3.11",
    )


def uv_or_pip() -> Missing | None:
    # The Makefile installs uv with pip when uv is missing.
    if shutil.which("uv") or run_ok(sys.executable, "-m", "pip", "--version"):
        return None
    return Missing(
        "uv (or pip, to install it): the venvs are made from the lock files with uv",
        "apt-get install python3-pip   (then the Makefile installs uv), or pipx install uv",
        "brew install uv",
    )


def run_ok(*command: str) -> bool:
    result = run_quietly(*command)
    return result is not None and result.returncode == 0


def postgres() -> Missing | None:
    if postgres_bin("initdb") and postgres_bin("postgres"):
        return None
    return Missing(
        "PostgreSQL 15 (initdb and postgres, for the local stack's instance database)",
        "apt-get install postgresql-15",
        "brew install postgresql@15, then POSTGRES_BIN_DIR=$(brew --prefix postgresql@15)/bin",
        hint="Or give `make dev` a server of your own: make dev ARGS=--postgres-url=postgresql://...",
    )


def redis() -> Missing | None:
    if shutil.which("redis-server"):
        return None
    return Missing(
        "redis-server (the local stack's Celery broker)",
        "apt-get install redis-server",
        "brew install redis",
        hint="Or give `make dev` a server of your own: make dev ARGS=--redis-url=redis://...",
    )


def chromium() -> Missing | None:
    if CHROMIUM.exists():
        return None
    return Missing(
        f"Chromium at {CHROMIUM} (the browser tests drive it; Playwright's own download is "
        "not used)",
        "apt-get install chromium chromium-driver",
        "brew install --cask chromium, then CHROMIUM=/Applications/Chromium.app/Contents/MacOS/"
        "Chromium",
    )


def docker_cli() -> Missing | None:
    if shutil.which("docker"):
        return None
    return Missing(
        "the docker command (the platform's images and containers are driven with it)",
        "apt-get install docker.io docker-compose",
        "install Docker Desktop: https://docs.docker.com/desktop/setup/install/mac-install/",
    )


def compose() -> Missing | None:
    if not shutil.which("docker"):
        return None  # docker_cli names it
    if run_ok("docker", "compose", "version") or run_ok("docker-compose", "version"):
        return None
    return Missing(
        "Docker Compose: neither `docker compose` nor `docker-compose` answers",
        "apt-get install docker-compose   (or docker-compose-plugin from Docker's own apt "
        "repository)",
        "Docker Desktop includes it; update Docker Desktop",
    )


def engine() -> Missing | None:
    if not shutil.which("docker"):
        return None
    result = run_quietly("docker", "info", "--format", "{{.ServerVersion}}")
    if result is not None and result.returncode == 0:
        return None
    said = (result.stderr.strip().splitlines() or ["no answer"])[-1] if result else "no answer"
    where = os.environ.get("DOCKER_HOST") or "the default socket, /var/run/docker.sock"
    return Missing(
        f"a running container engine: the docker command cannot reach one at {where} ({said})",
        "systemctl start docker   (or set DOCKER_HOST to your engine's socket)",
        "start Docker Desktop",
    )


def containers_required() -> bool:
    # CI sets it: there the container and swarm suites must run, not skip (tests/conftest.py).
    return os.environ.get("REQUIRE_CONTAINER_TESTS") == "1"


CHECKS: dict[str, list[Check]] = {
    "up": [python_311, uv_or_pip, docker_cli, compose, engine],
    "dev": [python_311, uv_or_pip, postgres, redis],
    "test": [python_311, uv_or_pip, postgres, redis, chromium],
    "bench": [python_311, uv_or_pip, postgres, redis],
}
# Without these, `make test` skips its container and swarm suites (and `make bench` its
# container section) and says so; CI (REQUIRE_CONTAINER_TESTS=1) requires them.
OPTIONAL: dict[str, list[Check]] = {
    "test": [docker_cli, compose, engine],
    "bench": [docker_cli, compose, engine],
}


def missing_for(command: str) -> tuple[list[Missing], list[Missing]]:
    """(what the command cannot do without, what only some of its parts need)."""
    required = [found for check in CHECKS[command] if (found := check())]
    optional = [found for check in OPTIONAL.get(command, []) if (found := check())]
    if command == "test" and containers_required():
        return required + optional, []
    return required, optional


def report(command: str) -> int:
    required, optional = missing_for(command)
    if optional:
        part = "container and swarm suites" if command == "test" else "container section"
        print(f"make {command}: its {part} will be skipped; this machine lacks:", file=sys.stderr)
        print("\n".join(item.render() for item in optional), file=sys.stderr)
    if not required:
        return 0
    print(
        f"make {command} needs what this machine lacks (nothing was created):\n"
        + "\n".join(item.render() for item in required),
        file=sys.stderr,
    )
    if command == "up":
        print(
            "\nNo container engine on this machine? `make dev` runs the same platform as local "
            "processes (PostgreSQL and Redis from the distribution; `make doctor` checks them).",
            file=sys.stderr,
        )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=[*CHECKS, "all"])
    args = parser.parse_args(argv)
    if args.command != "all":
        return report(args.command)
    failed = 0
    for command in CHECKS:
        required, optional = missing_for(command)
        state = "ready" if not required else "NOT ready"
        extra = f" ({len(optional)} optional part(s) missing)" if optional else ""
        print(f"make {command:<6} {state}{extra}")
        for item in [*required, *optional]:
            print(item.render())
        failed |= bool(required)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
