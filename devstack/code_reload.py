"""Local mode: a Reload in the UI brings the new code to the team's workers too.

A team's code server (`dagster code-server start`) answers a Reload by importing the team's code
again in a new server process, which has a new server id. The team's step and run workers
imported the code once, before they forked (dagster_team_celery/workers/worker_startup.py), so
when a team's server id changes, the watcher restarts them as `make redeploy TEAM=x MODE=local`
does: SIGTERM to each worker's main process, whose warm shutdown stops taking work at once and lets
the steps and runs in flight finish on the code they started with; the supervisor then starts
it again, and it imports the new code.

A worker that started after the old server was last seen (a redeploy restarts the code server
and the workers together) already has the new code and is left alone.

Compose needs none of this: there the code is baked into the image, and new code comes only
with `make redeploy`, which recreates the team's containers.
"""

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dagster._grpc.client import DagsterGrpcClient

from devstack import config
from devstack.processes import Service

POLL_SECONDS = 0.5
logger = logging.getLogger(__name__)


@dataclass
class SeenServer:
    server_id: str
    seen_at: float  # wall clock, to compare with a service's start


def server_id(port: int) -> str | None:
    """The code server's id, or None while it does not answer (restarting, say)."""
    try:
        return DagsterGrpcClient(port=port, host=config.LOCAL_HOST).get_server_id(timeout=2)
    except Exception:
        return None


class CodeReloadWatcher:
    def __init__(
        self,
        code_ports: Mapping[str, int],
        workers_of: Callable[[str], list[Service]],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.code_ports = dict(code_ports)  # team -> its code server's port
        self.workers_of = workers_of  # team -> its step and run workers, as now supervised
        self.poll_seconds = poll_seconds
        self.seen: dict[str, SeenServer] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.poll()  # the servers' current ids, so only a later change counts
        self._thread = threading.Thread(target=self._watch, name="devstack-code-reload")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_seconds):
            self.poll()

    def poll(self) -> list[str]:
        """Ask each code server for its id; restart the workers of each team whose id changed.
        Returns the names of the workers signalled."""
        signalled = []
        for team, port in self.code_ports.items():
            current = server_id(port)
            if current is None:
                continue
            previous = self.seen.get(team)
            if previous is not None and previous.server_id != current:
                signalled += self.restart_workers(team, older_than=previous.seen_at)
            self.seen[team] = SeenServer(current, time.time())
        return signalled

    def restart_workers(self, team: str, older_than: float) -> list[str]:
        signalled = []
        for worker in self.workers_of(team):
            pid, started = worker.pid, worker.started_wall
            if pid is None or not worker.is_running() or started >= older_than:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                signalled.append(worker.name)
        if signalled:
            logger.warning(
                "%s's code server was reloaded: restarting %s so that new runs and steps use "
                "the new code (those in flight finish on the old).",
                team,
                ", ".join(signalled),
            )
        return signalled
