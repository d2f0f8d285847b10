"""A machine that lacks a tool: each command names it, says how to install it, creates nothing.

Each case runs the real check (`python3 -m scripts.preflight`, or `make` itself) with a PATH
that holds only the tools the case allows, as on a machine image without the missing one.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import REPO_ROOT, copy_checkout

# The interpreter itself, not a shim (pyenv's need pyenv on PATH); `python3` in the Makefile.
PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
BASE_TOOLS = ("bash", "make", "env", "cat", "ls", "rm", "mkdir", "cp", "sed", "grep", "column")
# `docker` answers, but not `docker compose`: the Compose v2 plugin is missing, as on a host
# with Debian's docker.io alone.
DOCKER_WITHOUT_COMPOSE = """#!/bin/sh
if [ "$1" = compose ]; then echo "docker: 'compose' is not a docker command." >&2; exit 1; fi
if [ "$1" = info ]; then echo 28.2.2; exit 0; fi
exit 0
"""
# `docker` and `docker compose` answer, but no engine does.
DOCKER_WITHOUT_ENGINE = """#!/bin/sh
if [ "$1" = compose ]; then echo "Docker Compose version v2.32.4"; exit 0; fi
if [ "$1" = info ]; then
  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." \
    "Is the docker daemon running?" >&2
  exit 1
fi
exit 0
"""


def machine(tmp_path: Path, *tools: str, python: bool = True, **scripts: str) -> dict[str, str]:
    """An environment whose PATH holds only `tools` (found on this machine), python3 and
    `scripts` (name -> shell text); no PostgreSQL, Redis or Chromium unless named."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*BASE_TOOLS, *tools):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    if python:
        (bin_dir / "python3").symlink_to(PYTHON)
        (bin_dir / "python3.11").symlink_to(PYTHON)
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DOCKER_HOST", "REQUIRE_CONTAINER_TESTS", "MAKEFLAGS", "MAKELEVEL"}
    }
    return {
        **environment,
        "PATH": str(bin_dir),
        "POSTGRES_BIN_DIR": str(empty),
        "CHROMIUM": str(empty / "chromium"),
    }


def preflight(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PYTHON), "-m", "scripts.preflight", command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / "checkout")


def make(checkout: Path, target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_up_without_compose_names_it_points_to_make_dev_and_creates_no_env(tmp_path, checkout):
    env = machine(tmp_path, "uv", docker=DOCKER_WITHOUT_COMPOSE)
    result = make(checkout, "up", env)
    assert result.returncode != 0
    assert "make up needs what this machine lacks (nothing was created)" in result.stderr
    assert "Docker Compose: neither `docker compose` nor `docker-compose` answers" in result.stderr
    assert "Debian: apt-get install docker-compose" in result.stderr
    assert "`make dev` runs the same platform as local processes" in result.stderr
    assert "command not found" not in result.stderr + result.stdout
    assert not (checkout / ".env").exists()
    assert not (checkout / ".venv").exists()


def test_make_up_without_a_running_engine_says_how_to_start_one(tmp_path, checkout):
    env = machine(tmp_path, "uv", docker=DOCKER_WITHOUT_ENGINE)
    result = make(checkout, "up", env)
    assert result.returncode != 0
    assert "a running container engine" in result.stderr
    assert "Cannot connect to the Docker daemon" in result.stderr
    assert "systemctl start docker" in result.stderr
    assert "start Docker Desktop" in result.stderr
    assert "make dev" in result.stderr
    assert not (checkout / ".env").exists()


def test_make_up_without_docker_at_all(tmp_path):
    result = preflight("up", machine(tmp_path, "uv"))
    assert result.returncode == 1
    assert "the docker command" in result.stderr
    assert "apt-get install docker.io docker-compose" in result.stderr
    assert "Docker Desktop" in result.stderr


def test_make_dev_without_postgres_and_redis_names_both_and_creates_no_venv(tmp_path, checkout):
    result = make(checkout, "dev", machine(tmp_path, "uv"))
    assert result.returncode != 0
    assert "make dev needs what this machine lacks" in result.stderr
    assert "apt-get install postgresql-15" in result.stderr
    assert "brew install postgresql@15" in result.stderr
    assert "apt-get install redis-server" in result.stderr
    assert "--postgres-url" in result.stderr and "--redis-url" in result.stderr
    assert not (checkout / ".venv").exists()


def test_make_test_without_chromium_names_it(tmp_path):
    env = machine(tmp_path, "uv", "redis-server")
    env["POSTGRES_BIN_DIR"] = str(
        Path(shutil.which("initdb") or "/usr/lib/postgresql/15/bin/x").parent
    )
    result = preflight("test", env)
    assert result.returncode == 1
    assert "Chromium" in result.stderr
    assert "apt-get install chromium chromium-driver" in result.stderr
    assert "PostgreSQL" not in result.stderr and "redis-server" not in result.stderr


def test_make_test_skips_container_suites_without_an_engine_unless_ci_requires_them(tmp_path):
    env = machine(tmp_path, "uv", docker=DOCKER_WITHOUT_ENGINE)
    env["CHROMIUM"] = shutil.which("true") or "/bin/true"  # any file will do here
    env["POSTGRES_BIN_DIR"] = str(tmp_path / "pg")
    (tmp_path / "pg").mkdir()
    for name in ("initdb", "postgres"):
        (tmp_path / "pg" / name).write_text("")
    (tmp_path / "bin" / "redis-server").symlink_to(shutil.which("true") or "/bin/true")
    lenient = preflight("test", env)
    assert lenient.returncode == 0, lenient.stderr
    assert "its container and swarm suites will be skipped" in lenient.stderr
    required = preflight("test", {**env, "REQUIRE_CONTAINER_TESTS": "1"})
    assert required.returncode == 1
    assert "make test needs what this machine lacks" in required.stderr
    assert "a running container engine" in required.stderr


def test_make_without_python3_says_how_to_get_it(tmp_path, checkout):
    result = make(checkout, "dev", machine(tmp_path, python=False))
    assert result.returncode != 0
    assert "python3 is missing: apt-get install python3" in result.stderr
    assert not (checkout / ".venv").exists()


def test_doctor_lists_every_command(tmp_path):
    result = preflight("all", machine(tmp_path, "uv"))
    assert result.returncode == 1
    for command in ("up", "dev", "test", "bench"):
        assert f"make {command}" in result.stdout
