"""The executor every team job uses: dagster-celery's, pinned to the team's own queue."""

from dagster import ExecutorDefinition
from dagster_celery import celery_executor

from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV, celery_settings


def team_celery_executor(team: str) -> ExecutorDefinition:
    """Route every step of a job to ``team``'s queue, which only that team's workers consume.

    The broker and backend URLs stay environment references, so the password never lands in
    run config or in the run's stored snapshot.
    """
    return celery_executor.configured(
        {
            "broker": {"env": BROKER_URL_ENV},
            "backend": {"env": BACKEND_URL_ENV},
            "config_source": celery_settings(queue=team),
        },
        name=f"{team}_celery_executor",
    )
