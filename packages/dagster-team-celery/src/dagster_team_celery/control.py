"""A Celery client that sees one team's queue, workers and results as that team's runs do.

Every key and channel of a team is under its key prefix (settings.key_prefix), so a plain
``Celery(broker=...)`` sees no team's workers: ``inspect`` and ``revoke`` need this app.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from kombu.exceptions import OperationalError

from dagster_team_celery.settings import backend_url, broker_url, celery_settings


def team_app(team: str, broker: str | None = None, backend: str | None = None) -> Celery:
    app = Celery(broker=broker or broker_url(), backend=backend or backend_url())
    app.conf.update(celery_settings(queue=team))
    return app


# Redis runs with a memory bound and `noeviction` (docker-compose.yml, devstack/infra.py): full,
# it refuses writes instead of evicting queued steps, and kombu raises its refusal as an
# OperationalError like any outage.
MAXMEMORY_ENV = "REDIS_MAXMEMORY"
DEFAULT_MAXMEMORY = "512mb"


class BrokerFull(OperationalError):
    """The broker refused a message because it reached its memory bound."""


def is_broker_full(error: BaseException) -> bool:
    return "used memory > 'maxmemory'" in str(error)


def broker_full_message(team: str, error: BaseException) -> str:
    return (
        f"The broker (Redis) is full: it refused team {team}'s message ({error}). Redis stops"
        f" taking writes at {MAXMEMORY_ENV} (default {DEFAULT_MAXMEMORY}) rather than evict"
        " queued steps. Find the queue that holds the most (Flower, or `redis-cli --user"
        " default INFO memory` and `LLEN` on each team:<team>: queue), drain or purge it, or"
        f" raise {MAXMEMORY_ENV}; then launch again."
    )


@contextmanager
def full_broker_explained(team: str) -> Iterator[None]:
    """A message the full broker refuses raises BrokerFull, naming the bound and the fix."""
    try:
        yield
    except OperationalError as error:
        if not is_broker_full(error):
            raise
        raise BrokerFull(broker_full_message(team, error)) from error
