"""The Celery app Flower runs: ``celery -A dagster_team_celery.deploy.flower_app flower``, with
DAGSTER_CELERY_BROKER_URL set to Flower's own Redis user (redis_acl.flower_rule)."""

from celery import Celery

from dagster_team_celery.deploy.flower_events import every_team_broker
from dagster_team_celery.settings import broker_url

app = Celery("flower", broker=every_team_broker(broker_url()))
