"""dagster.yaml's one run launcher entry, and the setting that picks warm runs or a container
per run, as the instance loads it."""

from pathlib import Path

import pytest
import yaml
from dagster._core.test_utils import instance_for_test

from dagster_team_celery.runs.container_launcher import TeamDockerRunLauncher
from dagster_team_celery.runs.isolation import RUN_ISOLATION_ENV
from dagster_team_celery.runs.warm_launcher import WarmRunLauncher
from dagster_team_celery.settings import PlatformConfigError

REPO_INSTANCE = Path(__file__).resolve().parents[3] / "dagster.yaml"


def platform_launcher() -> dict:
    return yaml.safe_load(REPO_INSTANCE.read_text())["run_launcher"]


def launcher_for(isolation: str | None, monkeypatch, run_launcher: dict | None = None):
    if isolation is None:
        monkeypatch.delenv(RUN_ISOLATION_ENV, raising=False)
    else:
        monkeypatch.setenv(RUN_ISOLATION_ENV, isolation)
    overrides = {"run_launcher": run_launcher or platform_launcher()}
    with instance_for_test(overrides=overrides) as instance:
        return instance.run_launcher


def test_runs_start_warm_unless_the_deployment_asks_for_containers(monkeypatch):
    launcher = launcher_for(None, monkeypatch)
    assert type(launcher) is WarmRunLauncher
    assert launcher.code_server_locations == {"platform"}
    assert type(launcher_for(" warm ", monkeypatch)) is WarmRunLauncher


def test_container_isolation_gets_the_docker_launcher_with_its_own_config(monkeypatch):
    launcher = launcher_for("container", monkeypatch)
    assert type(launcher) is TeamDockerRunLauncher
    assert "DAGSTER_POSTGRES_PASSWORD" in launcher.env_vars
    assert launcher.container_kwargs["stop_timeout"] == 30


def test_a_run_process_rebuilds_the_same_launcher_entry(monkeypatch):
    # A run's instance is rebuilt from the launcher's inst_data (the run worker, a run
    # container): it must name the entry in dagster.yaml, not the launcher it chose.
    launcher = launcher_for(None, monkeypatch)
    assert launcher.inst_data.module_name == "dagster_team_celery.runs.isolation"
    assert launcher.inst_data.class_name == "RunLauncherByIsolation"


def test_an_unknown_isolation_names_the_setting_and_the_choices(monkeypatch):
    with pytest.raises(PlatformConfigError) as refused:
        launcher_for("containers", monkeypatch)
    message = str(refused.value)
    assert f"{RUN_ISOLATION_ENV}='containers'" in message
    assert "warm" in message and "container" in message and ".env" in message


def test_a_bad_config_for_the_chosen_launcher_names_its_entry(monkeypatch):
    run_launcher = platform_launcher()
    run_launcher["config"]["warm"] = {"code_server_location": ["platform"]}
    with pytest.raises(PlatformConfigError) as refused:
        launcher_for("warm", monkeypatch, run_launcher)
    message = str(refused.value)
    assert "run_launcher.config.warm" in message and "WarmRunLauncher" in message
    assert "code_server_location" in message
