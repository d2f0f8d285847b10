"""The executor every team job uses: dagster-celery, pinned to the team's own queue."""

import logging
import os

from dagster import (
    Executor,
    ExecutorDefinition,
    Field,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
)
from dagster._core.execution.retries import RetryMode
from dagster_celery import celery_executor
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor

from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, celery_settings
from dagster_team_celery.steps.orchestration import LoopSettings, team_celery_execution_loop

# `dagster-celery` switches every team back to dagster-celery's own executor loop, should the
# platform's ever misbehave; the tasks and workers are the same either way.
EXECUTOR_LOOP_ENV = "DAGSTER_CELERY_EXECUTOR_LOOP"
# For a team member iterating in the team's folder (`dg dev`): every step runs in the run's
# own process, with no Redis and no workers. Only set by hand; the platform never sets it, and
# a code server that has it says so in its log.
IN_PROCESS_ENV = "DAGSTER_TEAM_IN_PROCESS"

logger = logging.getLogger(__name__)

LOOP_CONFIG = {
    "poll_interval_seconds": Field(
        float,
        default_value=LoopSettings.poll_interval_seconds,
        description="Seconds between reads of every in-flight step's result (one Redis MGET).",
    ),
    "worker_check_interval_seconds": Field(
        float,
        default_value=LoopSettings.worker_check_interval_seconds,
        description="Seconds between checks that running steps' workers are still alive.",
    ),
    "lost_worker_timeout_seconds": Field(
        float,
        default_value=LoopSettings.lost_worker_timeout_seconds,
        description="How long a step whose worker died, or a queue with no worker, may wait "
        "for a worker before the run fails.",
    ),
    "broker_outage_timeout_seconds": Field(
        float,
        default_value=LoopSettings.broker_outage_timeout_seconds,
        description="How long the run rides out an unreachable broker or result backend.",
    ),
    "termination_timeout_seconds": Field(
        float,
        default_value=LoopSettings.termination_timeout_seconds,
        description="After Terminate, how long the run waits for workers to confirm that its "
        "steps stopped before it ends CANCELED.",
    ),
    "pool_recheck_seconds": Field(
        float,
        default_value=LoopSettings.pool_recheck_seconds,
        description="Longest wait between attempts to claim a concurrency pool slot for a "
        "blocked step (Dagster backs off up to 15 s).",
    ),
}


class TeamCeleryExecutor(CeleryExecutor):
    def __init__(self, loop_settings: LoopSettings, **celery_args) -> None:
        super().__init__(**celery_args)
        self.loop_settings = loop_settings

    def execute(self, plan_context, execution_plan):
        return team_celery_execution_loop(plan_context, execution_plan, self.loop_settings)


@executor(
    name="team_celery",
    config_schema={**CELERY_CONFIG, **LOOP_CONFIG},
    requirements=multiple_process_executor_requirements(),
)
def team_celery(init_context) -> Executor:
    """dagster-celery's executor with the platform's execution loop (see orchestration.py)."""
    config = init_context.executor_config
    return TeamCeleryExecutor(
        loop_settings=LoopSettings(**{key: config[key] for key in LOOP_CONFIG}),
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
    )


def team_celery_executor(team: str) -> ExecutorDefinition:
    """Route every step of a job to ``team``'s queue, which only that team's workers consume.

    The broker and backend URLs stay environment references, so the password never lands in
    run config or in the run's stored snapshot. The loop settings stay open to run config
    (``execution: {config: {lost_worker_timeout_seconds: 600}}``); the routing does not.
    """
    fixed = {
        "broker": {"env": BROKER_URL_ENV},
        "backend": {"env": BACKEND_URL_ENV},
        "config_source": celery_settings(queue=team),
    }
    if os.environ.get(IN_PROCESS_ENV) == "1":
        logger.warning(
            "%s=1: team %r runs every step in-process, in the run's own process, not on its "
            "Celery queue. For `dg dev` in the team's folder only; unset it in the platform.",
            IN_PROCESS_ENV,
            team,
        )
        return in_process_executor
    name = f"{team}_celery_executor"
    if os.environ.get(EXECUTOR_LOOP_ENV) == "dagster-celery":
        return celery_executor.configured(fixed, name=name)
    return team_celery.configured(
        lambda loop_config: {**fixed, **loop_config}, config_schema=LOOP_CONFIG, name=name
    )
