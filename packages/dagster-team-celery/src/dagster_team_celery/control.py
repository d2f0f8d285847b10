"""A Celery client that sees one team's queue, workers and results as that team's runs do.

Every key and channel of a team is under its key prefix (settings.key_prefix), so a plain
``Celery(broker=...)`` sees no team's workers: ``inspect`` and ``revoke`` need this app.
"""

from celery import Celery

from dagster_team_celery.settings import backend_url, broker_url, celery_settings


def team_app(team: str, broker: str | None = None, backend: str | None = None) -> Celery:
    app = Celery(broker=broker or broker_url(), backend=backend or backend_url())
    app.conf.update(celery_settings(queue=team))
    return app
