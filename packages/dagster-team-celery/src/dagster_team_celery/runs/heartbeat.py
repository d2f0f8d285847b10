"""A warm run's heartbeat: how run monitoring tells a live run process from a dead one, and how
a run process learns that a resumed attempt has taken its place.

The process that executes a run (run_task.py) writes one key under its team's prefix every
``BEAT_SECONDS``, expiring after ``TTL_SECONDS``: ``<prefix>run-heartbeat-<run id>``, holding
the attempt (0 for the launch, n for the n-th resume), the worker and the pid. Run monitoring
(warm_run_launcher.py) reads it: a key that is gone means the process is gone, whatever killed
it (the worker's container, its host, the OOM killer), with no worker to ask.

A process that was only stalled (stopped, or starved of CPU longer than the TTL) may come back
after monitoring resumed its run elsewhere. Its next beat finds a later attempt in the key and
the process exits at once, writing nothing more: one orchestrator per run.
"""

import contextlib
import logging
import os
import threading
from collections.abc import Callable

import redis

from dagster_team_celery.settings import key_prefix

BEAT_SECONDS = 1.0
# Long enough to ride out a busy machine; short enough that monitoring (every 5 s, two
# misses) notices a dead run process within about 15 s.
TTL_SECONDS = 5
# Sets the key unless a later attempt holds it; returns what the later attempt wrote.
BEAT_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local attempt = tonumber(string.match(current, '^(%d+) '))
  if attempt and attempt > tonumber(ARGV[2]) then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return false
"""

logger = logging.getLogger(__name__)


def heartbeat_key(team: str, run_id: str) -> str:
    return f"{key_prefix(team)}run-heartbeat-{run_id}"


def read_heartbeat(client: redis.Redis, team: str, run_id: str) -> str | None:
    """'<attempt> <worker> <pid>' while the run's process beats; None once it stopped."""
    value = client.get(heartbeat_key(team, run_id))
    return value.decode() if isinstance(value, bytes) else value


def superseded_exit(newer: str) -> None:
    logger.error("A resumed attempt (%s) now runs this run; this process stops here.", newer)
    os._exit(0)


class RunHeartbeat:
    def __init__(
        self,
        client: redis.Redis,
        team: str,
        run_id: str,
        attempt: int,
        worker: str,
        on_superseded: Callable[[str], None] = superseded_exit,
    ) -> None:
        self.client = client
        self.key = heartbeat_key(team, run_id)
        self.attempt = attempt
        self.value = f"{attempt} {worker} {os.getpid()}"
        self.on_superseded = on_superseded
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="run-heartbeat", daemon=True)
        self.failing = False

    def beat(self) -> None:
        newer = self.client.eval(
            BEAT_SCRIPT, 1, self.key, self.value, str(self.attempt), str(TTL_SECONDS)
        )
        if newer:
            self.on_superseded(newer.decode() if isinstance(newer, bytes) else str(newer))

    def loop(self) -> None:
        while not self.stopped.wait(BEAT_SECONDS):
            try:
                self.beat()
                self.failing = False
            except redis.RedisError as error:
                # Redis restarting: monitoring cannot read the key either, and waits too.
                if not self.failing:
                    logger.warning("Run heartbeat not written (%s); retrying.", error)
                self.failing = True

    def __enter__(self) -> "RunHeartbeat":
        # Before the run's first event, so monitoring never sees it started and not beating.
        try:
            self.beat()
        except redis.RedisError as error:
            logger.warning("Run heartbeat not written (%s); retrying.", error)
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(BEAT_SECONDS * 2)
        # Only this attempt's own key: a later attempt's stays. (Unreachable: it expires.)
        with contextlib.suppress(redis.RedisError):
            self.client.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                self.key,
                self.value,
            )
