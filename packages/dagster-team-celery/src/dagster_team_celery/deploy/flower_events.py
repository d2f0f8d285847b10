"""The Redis transport Flower's app uses (flower_app.py) to hear every team's events.

A team's events are published on channels under its key prefix (settings.key_prefix), where
only that team's Redis user can reach them. Flower subscribes to one pattern that matches
every team's event channels, ``team:*:/0.celeryev/*``, so it sees every team's workers and
tasks, a team added later included, while its own Redis user may subscribe to that pattern
and nothing else (redis_acl.py). The channel a message arrives on is mapped back to the plain
``celeryev`` exchange Celery's event receiver bound.

Flower's inspect calls (its worker pages' pool and queue details) go to the unprefixed control
channel, which no team listens on; Flower logs them as failed and shows what events carry.
"""

import re

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from dagster_team_celery.settings import key_prefix

SCHEME = "teamsredis"
EVERY_TEAM = key_prefix("*")
_TEAM_PREFIX = re.compile(r"^team:[^:/]+:")


class EveryTeamChannel(kombu_redis.Channel):
    def _get_subscribe_topics(self, queue):
        return [EVERY_TEAM + topic for topic in super()._get_subscribe_topics(queue)]

    def _handle_message(self, client, r):
        payload = super()._handle_message(client, r)
        if payload["channel"] is not None:
            payload["channel"] = _TEAM_PREFIX.sub("", bytes_to_str(payload["channel"]), count=1)
        return payload


class EveryTeamTransport(kombu_redis.Transport):
    Channel = EveryTeamChannel


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:EveryTeamTransport"


def every_team_broker(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if scheme != "redis" or not separator:
        raise ValueError(f"Flower's broker must be a redis:// URL, not {scheme or url!r}.")
    return f"{SCHEME}://{rest}"
