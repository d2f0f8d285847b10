"""The task a warm run worker runs for each run: the run's orchestration, in a pool process
forked from a worker that has already imported Dagster, Celery and the team's code.

It does what ``dagster api execute_run`` does in a fresh interpreter
(dagster/_cli/api.py, ``_execute_run_command_body``): report the run's process, then
``core_execute_run``. The run worker gives each run a pool process of its own
(``--max-tasks-per-child 1``), so a run that crashes takes only its own process down, and the
next run starts in a fresh fork.

A launch is acknowledged as soon as a run worker takes it (``acks_late=False``), unlike a step:
a run holds its message for as long as it runs, and a worker holding an unacknowledged message
when the broker restarts dies in kombu 5.7's restore of it (``Restoring 1 unacknowledged
message(s)``, then ``Unrecoverable error: AttributeError(...'hostname')``, seen in the Redis
restart fault test), taking its runs down. A launch lost with a worker before the run started is
failed by run monitoring's start timeout. A run still executes only while it is STARTING: any
other state means it was started, canceled or failed already. The message names only the
run: the code comes from the run's own origin, checked against this worker's team module, and
events go to the worker's own instance (tasks.py).
"""

import logging
import os

from celery import Celery, Task
from dagster import DagsterRunStatus
from dagster._core.events import EngineEventData
from dagster._grpc.impl import core_execute_run
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster._utils.interrupts import capture_interrupts

from dagster_team_celery.settings import run_terminate_grace_seconds
from dagster_team_celery.tasks import check_own_code, own_instance
from dagster_team_celery.termination import TerminableStepRequest

RUN_TASK_NAME = "dagster_team_celery.execute_run"

logger = logging.getLogger(__name__)


class TerminableRunRequest(TerminableStepRequest):
    """Terminate sends the run SIGTERM; a run that has not ended after its grace is killed."""

    @staticmethod
    def grace_seconds() -> float:
        return run_terminate_grace_seconds()


def create_execute_run_task(app: Celery) -> Task:
    @app.task(
        bind=True,
        name=RUN_TASK_NAME,
        Request=TerminableRunRequest,
        shared=False,  # the step worker, forked from the same parent, must not run runs
        acks_late=False,
        # A run whose process died is failed by run monitoring, never started again.
        reject_on_worker_lost=False,
    )
    def execute_run(self: Task, run_id: str) -> str:
        instance = own_instance(None)
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise LookupError(f"Run {run_id} is not in this worker's instance (DAGSTER_HOME).")
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, "Canceled before a run worker started it.")
            return DagsterRunStatus.CANCELED.value
        if run.status != DagsterRunStatus.STARTING:
            logger.warning("Not starting run %s again: it is %s.", run_id, run.status.value)
            return run.status.value
        if run.job_code_origin is None:
            raise ValueError(f"Run {run_id} has no code origin; it cannot be executed.")
        # The plain class: the run's executor serializes it into each step's task.
        recon_job = recon_job_from_origin(run.job_code_origin)
        check_own_code(recon_job, task="run")
        pid = os.getpid()
        instance.report_engine_event(
            f"Started process for run (pid: {pid}) in warm run worker {self.request.hostname}.",
            run,
            EngineEventData.in_process(pid),
        )
        # As in `dagster api execute_run`: Terminate's SIGTERM becomes Dagster's interrupt,
        # which stops the run's steps and ends it CANCELED.
        with capture_interrupts():
            try:
                for _event in core_execute_run(recon_job, run, instance, inject_env_vars=True):
                    pass
            except Exception:
                # core_execute_run has recorded the failure in the run's event log.
                logger.exception("Run %s failed", run_id)
        finished = instance.get_run_by_id(run_id)
        return finished.status.value if finished else "UNKNOWN"

    return execute_run
