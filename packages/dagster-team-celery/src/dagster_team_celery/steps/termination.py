"""Stopping a step that is already running: SIGTERM, then SIGKILL after a grace period.

Celery's ``revoke(terminate=True)`` sends one signal to the pool process running the task and
forgets it: the request is marked REVOKED and acknowledged at once, whether or not the process
stops. A Dagster step turns SIGTERM into ``DagsterExecutionInterruptedError`` inside user code,
but user code stuck in C (a numpy kernel, a socket read) or catching the error runs on. So the
worker's main process gives the step its grace (``terminate_grace_seconds()`` in settings.py)
and then SIGKILLs the pool process if it is still inside that same job. The step's own process
leaves the pool after an interruption (``exit_after_interrupted_step``), so nothing the step
started lives on in it.
"""

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.worker.request import Request
from dagster._core.errors import DagsterExecutionInterruptedError

from dagster_team_celery.settings import terminate_grace_seconds

logger = logging.getLogger(__name__)


class TerminableStepRequest(Request):
    """A request whose termination is escalated to SIGKILL when the step outlives the grace."""

    @staticmethod
    def grace_seconds() -> float:
        return terminate_grace_seconds()

    def terminate(self, pool, signal=None) -> None:
        pid, job = self.worker_pid, self._apply_result
        super().terminate(pool, signal)
        if pid is None or job is None or signal in (9, "9", "KILL", "SIGKILL"):
            return
        grace = self.grace_seconds()
        timer = threading.Timer(grace, self._kill_if_still_running, (pool, pid, job, grace))
        timer.daemon = True
        timer.start()

    def _kill_if_still_running(self, pool, pid: int, job: Callable[[], Any], grace: float) -> None:
        result = job()  # a weak reference: gone once the pool has forgotten the finished job
        if result is None or result.ready():
            return
        logger.warning(
            "Task %s still running in pool process %d %.0fs after SIGTERM; sending SIGKILL.",
            self.id,
            pid,
            grace,
        )
        pool.terminate_job(pid, signal.SIGKILL)


@contextmanager
def exit_after_interrupted_step() -> Iterator[None]:
    """Run a step in a pool process; leave the pool if the step was interrupted.

    Dagster maps SIGTERM to its interrupt handler while a step runs and, when the step ends,
    restores SIGINT's disposition to both signals: in a pool process that is "ignore", so
    without the restore below an idle pool process would ignore SIGTERM from then on.
    A step that was interrupted may have left threads or child processes behind, so the pool
    process exits (SystemExit; Celery's pool replaces it) instead of taking the next step.
    """
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    except DagsterExecutionInterruptedError:
        logger.warning("Step interrupted (terminated); pool process %d exits.", os.getpid())
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
