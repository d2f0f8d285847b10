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
failed by run monitoring's start timeout. A launch executes only a STARTING run: any other state
means it was started, canceled or failed already. The message names only the run (and which
attempt): the code comes from the run's own origin, checked against this worker's team module,
and events go to the worker's own instance (tasks.py).

**Resume.** While it executes, the run's process beats (run_heartbeat.py). When the beat stops
(the worker's container, host or process died), run monitoring resumes the run: the launcher
sends this task again with the attempt's number, and whichever of the team's run workers takes
it, on any host, executes the STARTED run with ``resume_from_failure``. The team's executor then
picks up where the dead process left off (orchestration.py).
"""

import logging
import os

import redis
from celery import Celery, Task
from dagster import DagsterRunStatus
from dagster._core.events import EngineEventData
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.impl import core_execute_run
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster._utils.interrupts import capture_interrupts

from dagster_team_celery.runs.heartbeat import RunHeartbeat
from dagster_team_celery.settings import backend_url, run_terminate_grace_seconds, team_name
from dagster_team_celery.steps.step_task import check_own_code, own_instance
from dagster_team_celery.steps.termination import TerminableStepRequest

RUN_TASK_NAME = "dagster_team_celery.execute_run"

logger = logging.getLogger(__name__)


class TerminableRunRequest(TerminableStepRequest):
    """Terminate sends the run SIGTERM; a run that has not ended after its grace is killed."""

    @staticmethod
    def grace_seconds() -> float:
        return run_terminate_grace_seconds()


def runnable(instance, run_id: str, attempt: int) -> tuple[DagsterRun | None, str | None]:
    """The run, if this attempt may execute it; else why not (its status, as the task's
    result). A launch (attempt 0) executes a STARTING run; a resume, a STARTED one."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"Run {run_id} is not in this worker's instance (DAGSTER_HOME).")
    if run.status == DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, "Canceled before a run worker started it.")
        return None, DagsterRunStatus.CANCELED.value
    expected = DagsterRunStatus.STARTED if attempt else DagsterRunStatus.STARTING
    if run.status != expected:
        logger.warning("Not executing run %s (attempt %d): it is %s.", run_id, attempt, run.status)
        return None, run.status.value
    if run.job_code_origin is None:
        raise ValueError(f"Run {run_id} has no code origin; it cannot be executed.")
    return run, None


def create_execute_run_task(app: Celery) -> Task:
    @app.task(
        bind=True,
        name=RUN_TASK_NAME,
        Request=TerminableRunRequest,
        shared=False,  # the step worker, forked from the same parent, must not run runs
        acks_late=False,
        # A run whose process died is resumed by run monitoring, never redelivered.
        reject_on_worker_lost=False,
    )
    def execute_run(self: Task, run_id: str, attempt: int = 0) -> str:
        instance = own_instance(None)
        run, skipped = runnable(instance, run_id, attempt)
        if run is None:
            return skipped or "UNKNOWN"
        # The plain class: the run's executor serializes it into each step's task.
        recon_job = recon_job_from_origin(run.job_code_origin)
        check_own_code(recon_job, task="run")
        pid = os.getpid()
        started = "Resumed" if attempt else "Started"
        with RunHeartbeat(
            redis.Redis.from_url(backend_url()), team_name(), run_id, attempt, self.request.hostname
        ):
            instance.report_engine_event(
                f"{started} process for run (pid: {pid}) in warm run worker "
                f"{self.request.hostname}{f' (resume attempt {attempt})' if attempt else ''}.",
                run,
                EngineEventData.in_process(pid),
            )
            execute(recon_job, run, instance, resume=bool(attempt))
        finished = instance.get_run_by_id(run_id)
        return finished.status.value if finished else "UNKNOWN"

    return execute_run


def execute(recon_job, run: DagsterRun, instance, resume: bool) -> None:
    """As in `dagster api execute_run` (or `resume_run`): Terminate's SIGTERM becomes Dagster's
    interrupt, which stops the run's steps and ends it CANCELED."""
    with capture_interrupts():
        try:
            for _event in core_execute_run(
                recon_job, run, instance, inject_env_vars=True, resume_from_failure=resume
            ):
                pass
        except Exception:
            # core_execute_run has recorded the failure in the run's event log.
            logger.exception("Run %s failed", run.run_id)
