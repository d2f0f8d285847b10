"""The vanilla stack's code location: a team's own definitions on stock dagster-celery.

bench/compared_stacks.py puts this folder on the PYTHONPATH of the vanilla stack's team processes
and starts their code servers with ``--module-name vanilla_definitions`` (the location keeps the
team's name). Runs and worker steps load their job through this module too, so every process
of a vanilla run sees the same swap: ``team_celery_executor`` becomes dagster-celery's own
``celery_executor`` with nothing but the team's queue, before the team's code asks for it. The
team's code and the shipped dagster-team-celery package stay as they are.
"""

import importlib
import os

import dagster as dg
from dagster_celery import celery_executor

from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV
from dagster_team_celery.steps import executor as team_executor


def stock_celery_executor(team: str) -> dg.ExecutorDefinition:
    """dagster-celery's executor and execution loop, untuned; only the queue is the team's."""
    return celery_executor.configured(
        {
            "broker": {"env": BROKER_URL_ENV},
            "backend": {"env": BACKEND_URL_ENV},
            "config_source": {"task_default_queue": team},
        },
        name=f"{team}_celery_executor",
    )


# Before the team's definitions are imported: each team's defs/platform.py calls
# `team_celery_executor(TEAM)` when it is imported.
team_executor.team_celery_executor = stock_celery_executor
defs = importlib.import_module(f"{os.environ['DAGSTER_TEAM']}.definitions").defs
