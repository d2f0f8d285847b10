"""The run launcher dagster.yaml names: how runs are isolated, chosen by one setting.

``DAGSTER_RUN_ISOLATION``, which docker-compose.container-runs.yml sets to ``container`` for
the daemon and the webserver:

- ``warm`` (the default): each run starts in its team's warm run worker, a fork of an
  interpreter that has the team's code loaded (warm_run_launcher.py). No container is
  started, so nothing needs the engine socket, and the daemon and the webserver run unprivileged.
- ``container``: each run gets a container of its own from its team's image
  (run_launcher.py, dagster-docker's launcher). Stronger isolation between a team's runs, at
  the price of a cold start per run and the engine socket in the daemon and the webserver
  (docker-compose.container-runs.yml adds it).

``from_config_value`` returns the chosen launcher itself, so Dagster talks to it directly.
"""

import os
from collections.abc import Mapping
from typing import Any

from dagster import Field, Permissive
from dagster._config import process_config
from dagster._core.launcher import RunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from dagster_team_celery.runs.warm_launcher import WarmRunLauncher
from dagster_team_celery.settings import PlatformConfigError

RUN_ISOLATION_ENV = "DAGSTER_RUN_ISOLATION"
ISOLATIONS = ("warm", "container")


def run_isolation() -> str:
    isolation = os.environ.get(RUN_ISOLATION_ENV, "").strip() or "warm"
    if isolation not in ISOLATIONS:
        raise PlatformConfigError(
            f"{RUN_ISOLATION_ENV}={isolation!r} is not one of {', '.join(ISOLATIONS)}. Leave it "
            "unset for warm (runs start in each team's warm run worker), or set container (a "
            "container per run) with COMPOSE_FILE=docker-compose.yml:"
            "docker-compose.container-runs.yml in .env."
        )
    return isolation


class RunLauncherByIsolation(RunLauncher, ConfigurableClass):
    """Never made itself: Dagster checks that the class names a RunLauncher, then calls
    ``from_config_value``, which returns the launcher the setting picks."""

    @classmethod
    def config_type(cls) -> dict:
        # Each launcher's own config, checked by that launcher when it is chosen.
        return {
            "warm": Field(Permissive(), is_required=False, default_value={}),
            "container": Field(Permissive(), is_required=False, default_value={}),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> RunLauncher:
        isolation = run_isolation()
        if isolation == "container":
            # Imported only here: team images and warm deployments need no dagster-docker.
            from dagster_team_celery.runs.container_launcher import TeamDockerRunLauncher

            launcher: type = TeamDockerRunLauncher
        else:
            launcher = WarmRunLauncher
        checked = process_config(launcher.config_type(), config_value[isolation])
        if not checked.success:
            raise PlatformConfigError(
                f"dagster.yaml's run_launcher.config.{isolation} is not a valid config for "
                f"{launcher.__name__}: {'; '.join(error.message for error in checked.errors)}"
            )
        return launcher.from_config_value(inst_data, checked.value)

    @property
    def inst_data(self) -> ConfigurableClassData | None:  # never made: see from_config_value
        return None
