"""How the __TEAM__ team's runs execute: every step on the team's own Celery queue."""

import dagster as dg

from __TEAM__ import TEAM
from dagster_team_celery.executor import team_celery_executor
from dagster_team_celery.probes import build_probe_jobs

executor = team_celery_executor(TEAM)


@dg.definitions
def platform_defs() -> dg.Definitions:
    return dg.Definitions(executor=executor, jobs=build_probe_jobs(executor))
