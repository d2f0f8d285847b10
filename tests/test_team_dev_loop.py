"""A team member's loop in the team's own folder: `dg` runs a job in-process, with no Redis,
no worker and no platform, once DAGSTER_TEAM_IN_PROCESS=1 says so (and only then)."""

import os
import subprocess

import pytest

from devstack import config
from tests.repo import REPO_ROOT, team_folders

# Everything that configures the platform's own processes and images.
PLATFORM_FILES = [
    REPO_ROOT / "docker-compose.yml",
    REPO_ROOT / "dagster.yaml",
    *sorted(path for path in (REPO_ROOT / "docker").rglob("*") if path.is_file()),
    *sorted((REPO_ROOT / "devstack").glob("*.py")),
]

# Starts each team's dg and its job in-process (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def dg(team: str, home, *args: str, **env: str) -> subprocess.CompletedProcess:
    folder = config.team_dir(team)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "VIRTUAL_ENV"))}
    return subprocess.run(
        [folder / ".venv" / "bin" / "dg", *args],
        cwd=folder,
        env={**clean, "DAGSTER_HOME": str(home), "VIRTUAL_ENV": str(folder / ".venv"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def home(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return tmp_path


@pytest.mark.parametrize("team", team_folders())
def test_dg_launch_runs_a_team_job_in_process_without_the_platform(team, home):
    result = dg(team, home, "launch", "--job", "probe_ping", DAGSTER_TEAM_IN_PROCESS="1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "RUN_SUCCESS" in output
    assert "runs every step in-process" in output, "the fallback must say so"


def test_without_the_switch_a_team_job_asks_for_the_broker(home):
    result = dg("bakery", home, "launch", "--job", "probe_ping")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DAGSTER_CELERY_BROKER_URL" in output


def test_the_platform_never_sets_the_in_process_switch():
    for path in PLATFORM_FILES:
        assert "DAGSTER_TEAM_IN_PROCESS" not in path.read_text(), path
