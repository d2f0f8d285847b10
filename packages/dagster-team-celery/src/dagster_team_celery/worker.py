"""The Celery app a team worker runs: ``celery -A dagster_team_celery.worker worker``.

Importing this module imports the team's Dagster code first. If that fails, Celery exits before
it connects, so a worker that cannot run a team's steps never takes one off the queue.
"""

import importlib
import logging
import os

from celery import bootsteps
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster_celery.config import dict_wrapper
from dagster_celery.make_app import make_app

from dagster_team_celery.liveness import REFRESH_SECONDS, liveness_path, mark_alive, mark_dead
from dagster_team_celery.settings import (
    PlatformConfigError,
    backend_url,
    broker_url,
    celery_settings,
    team_name,
    terminate_grace_seconds,
)
from dagster_team_celery.tasks import create_execute_plan_task, warm_up_before_fork

TEAM_MODULE_ENV = "DAGSTER_TEAM_MODULE"

logger = logging.getLogger(__name__)


def import_team_code(team: str) -> None:
    module_name = os.environ.get(TEAM_MODULE_ENV) or f"{team}.definitions"
    try:
        importlib.import_module(module_name)
        # Load the definitions as the code server does (same pointer), so a broken asset
        # module fails the worker now, and every forked pool process starts with them loaded.
        warm_up_before_fork(ReconstructableRepository.for_module(module_name, "defs", os.getcwd()))
    except Exception as error:
        raise PlatformConfigError(
            f"Worker for team {team!r} cannot import its code module {module_name!r}: "
            f"{type(error).__name__}: {error}. Fix the team's code or its image; the worker "
            f"will not consume queue {team!r} until it imports. (Override the module with "
            f"{TEAM_MODULE_ENV}.)"
        ) from error


class LivenessFile(bootsteps.StartStopStep):
    """Refresh the liveness file from the consumer loop; remove it when the consumer stops."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.path = liveness_path()
        self.timer_ref = None

    def start(self, consumer) -> None:
        mark_alive(self.path)
        self.timer_ref = consumer.timer.call_repeatedly(REFRESH_SECONDS, mark_alive, (self.path,))

    def stop(self, consumer) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        mark_dead(self.path)

    shutdown = stop


TEAM = team_name()
terminate_grace_seconds()  # a malformed setting stops the worker now, not at the first cancel
import_team_code(TEAM)

app = make_app(
    {
        "broker": broker_url(),
        "backend": backend_url(),
        "include": [],
        "config_source": dict_wrapper(celery_settings(queue=TEAM)),
    }
)
app.steps["consumer"].add(LivenessFile)
execute_plan = create_execute_plan_task(app)
