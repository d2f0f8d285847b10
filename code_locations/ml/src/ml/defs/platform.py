"""How the ML team's runs execute: every step on the ML team's own Celery queue."""

import dagster as dg

from dagster_team_celery.executor import team_celery_executor
from dagster_team_celery.probes import build_probe_jobs
from ml import TEAM

executor = team_celery_executor(TEAM)


@dg.definitions
def platform_defs() -> dg.Definitions:
    return dg.Definitions(executor=executor, jobs=build_probe_jobs(executor))
