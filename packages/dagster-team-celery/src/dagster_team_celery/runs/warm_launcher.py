"""The default run launcher: each run goes to its team's warm run workers through the broker.

Launching a run sends one task, named after the run, to the team's run queue
(settings.run_queue), under the team's key prefix, as the launcher's own Redis user
(redis_acl.py; it reaches every team's keys, so a new team changes nothing in the daemon or the
webserver). Whichever warm run worker of the team takes it, on any host, executes the run in a
pool process forked from an interpreter that has already imported the team's code
(run_worker.py, run_task.py). No container is started and no engine socket is involved.

**Health.** Run monitoring asks ``check_run_worker_health`` about every STARTED run:

- the run's current task (the launch's, or the latest resume's) FAILURE, SUCCESS or REVOKED
  while the run has not ended: its process is gone (Celery records a pool process's death, e.g.
  ``signal 9 (SIGKILL)``, as the task's failure);
- otherwise the run's heartbeat (run_heartbeat.py) answers: a process that beats is running; one
  whose key is gone at ``MISSES_BEFORE_LOST`` checks in a row is dead, whoever held it (a
  worker, its container, its host), with no worker to ask;
- when the broker is down, nothing can be told apart from an outage that the run rides out, so
  the run is failed only after ``UNREACHABLE_BROKER_SECONDS``.

**Resume.** A run found dead is resumed by run monitoring (``max_resume_run_attempts`` in
dagster.yaml): ``resume_run`` sends it to the team's run queue again, and the run worker that
takes it continues the run where it stopped (run_task.py, orchestration.py). Only after the
last attempt is the run failed.

**Locations with no run workers.** The platform's own code location (cache eviction, with no
Celery queue) has no run workers: its runs start as DefaultRunLauncher starts them, as
subprocesses of its code server (``code_server_locations``).

**Terminate** records CANCELING and, for a run that has started, has the worker send its
process SIGTERM, escalated to SIGKILL after the run's grace (termination.py). A run not started
yet is canceled by the run task when a worker takes it.
"""

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery, states
from dagster import DagsterRunStatus, Field
from dagster import _check as check
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dagster_team_celery.control import full_broker_explained, team_app
from dagster_team_celery.runs.heartbeat import read_heartbeat
from dagster_team_celery.runs.run_task import RUN_TASK_NAME
from dagster_team_celery.settings import celery_settings, run_queue

# Checks in a row (5 s apart, dagster.yaml's run_monitoring) that must find no heartbeat:
# one miss may be a busy machine or Redis restarting; a process beats every second and its key
# lives 5 s (run_heartbeat.py), so a dead run process is resumed within about 15 s.
MISSES_BEFORE_LOST = 2
# How long the broker may be unreachable before the team's STARTED runs are failed: the runs
# ride out a broker restart (orchestration.py).
UNREACHABLE_BROKER_SECONDS = 120.0
# How long a resumed run may wait for one of the team's run workers to take it (a restarted
# worker container takes a few seconds), as run monitoring's start_timeout_seconds does for a
# launch.
RESUME_TAKEN_WITHIN_SECONDS = 180.0
# The run tag naming the run's current task (the launch's is the run id; each resume's its own).
RUN_TASK_TAG = "dagster-team-celery/run-task"
ENDED_TASK_STATES = {states.SUCCESS, states.FAILURE, states.REVOKED}
BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError)


def run_team(run: DagsterRun) -> str:
    """The run's code location, which is its team: named in the workspace, not by the team."""
    if run.remote_job_origin is None:
        raise ValueError(f"Run {run.run_id} has no code location, so no team to run it.")
    return run.remote_job_origin.location_name


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        code_server_locations: Sequence[str] = ("platform",),
    ) -> None:
        self._inst_data = inst_data
        self.code_server_locations = frozenset(code_server_locations)
        self.code_server_launcher = DefaultRunLauncher()
        self._apps: dict[str, Celery] = {}
        self._misses: dict[str, int] = {}
        self._unreachable_since: dict[str, float] = {}
        self._waiting_since: dict[str, float] = {}
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {
            "code_server_locations": Field(
                [str],
                is_required=False,
                default_value=["platform"],
                description="Code locations whose runs start in their code server.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "WarmRunLauncher":
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        self.code_server_launcher.register_instance(instance)

    def in_code_server(self, run: DagsterRun) -> bool:
        return run_team(run) in self.code_server_locations

    def app(self, team: str) -> Celery:
        """The team's Celery client: the team's key prefix, this process's broker user."""
        if team not in self._apps:
            app = team_app(team)
            app.conf.update(celery_settings(queue=run_queue(team), team=team))
            # Run monitoring must not sit out a Redis outage inside one check (workers retry
            # result writes for minutes); the next check asks again.
            app.conf.result_backend_always_retry = False
            self._apps[team] = app
        return self._apps[team]

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if self.in_code_server(run):
            self.code_server_launcher.launch_run(context)
            return
        team = run_team(run)
        with full_broker_explained(team):
            self.app(team).send_task(
                RUN_TASK_NAME, args=[run.run_id], task_id=run.run_id, queue=run_queue(team)
            )
        self._instance.report_engine_event(
            f"Sent to team {team}'s warm run workers (queue {run_queue(team)}).",
            run,
            cls=self.__class__,
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        if self.in_code_server(run):
            return self.code_server_launcher.terminate(run_id)
        self._instance.report_run_canceling(run)
        if run.status == DagsterRunStatus.STARTED:
            # A broadcast, but the broker may be slow: the UI's request does not wait for it.
            threading.Thread(
                target=self.app(run_team(run)).control.revoke,
                args=(run_id,),
                kwargs={"terminate": True, "signal": "SIGTERM"},
                name=f"revoke-run-{run_id[:8]}",
                daemon=True,
            ).start()
        return True

    @property
    def supports_resume_run(self) -> bool:
        return True

    def resume_run(self, context: ResumeRunContext) -> None:
        """Run monitoring found the run's process gone: send the run to the team's run queue
        again, as attempt ``n``. Any of the team's run workers, on any host, takes it."""
        run = context.dagster_run
        if self.in_code_server(run):
            raise NotImplementedError("Runs of the platform's own location are not resumed.")
        team = run_team(run)
        attempt = context.resume_attempt_number or 1
        task_id = f"{run.run_id}-resume-{attempt}"
        # Before it is sent: health checks must follow the new task from the start.
        self._instance.add_run_tags(run.run_id, {RUN_TASK_TAG: task_id})
        with full_broker_explained(team):
            self.app(team).send_task(
                RUN_TASK_NAME,
                args=[run.run_id, attempt],
                task_id=task_id,
                queue=run_queue(team),
            )
        self._instance.report_engine_event(
            f"Resume attempt {attempt} sent to team {team}'s warm run workers "
            f"(queue {run_queue(team)}).",
            run,
            cls=self.__class__,
        )

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if self.in_code_server(run):
            # As DefaultRunLauncher: not checked (UNKNOWN would make run monitoring fail it).
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "runs in its code server; not checked"
            )
        team = run_team(run)
        app = self.app(team)
        try:
            meta = app.backend.get_task_meta(run.tags.get(RUN_TASK_TAG, run.run_id))
            beat = read_heartbeat(app.backend.client, team, run.run_id)
        except BROKER_ERRORS as error:
            return self.unreachable_broker_health(run, team, error)
        self._unreachable_since.pop(run.run_id, None)
        state = meta.get("status", states.PENDING)
        if state in ENDED_TASK_STATES:
            return self.ended_task_health(run, state, meta)
        if beat:
            self._misses.pop(run.run_id, None)
            self._waiting_since.pop(run.run_id, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        if state == states.PENDING:
            return self.waiting_resume_health(run, team)
        misses = self._misses.get(run.run_id, 0) + 1
        self._misses[run.run_id] = misses
        if misses < MISSES_BEFORE_LOST:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no heartbeat at this check")
        self._misses.pop(run.run_id, None)
        started = meta.get("result") or {}
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"The run's process (pid {started.get('pid', '?')} in warm run worker "
            f"{started.get('hostname', '?')}) stopped beating: the worker, its container or its "
            "host died with the run in flight.",
        )

    def ended_task_health(self, run: DagsterRun, state: str, meta: dict) -> CheckRunHealthResult:
        current = check.not_none(self._instance.get_run_by_id(run.run_id))
        if current.is_finished:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"The run's process ended without finishing the run (its task is {state}: "
            f"{meta.get('result')!r}). It crashed or was killed.",
        )

    def waiting_resume_health(self, run: DagsterRun, team: str) -> CheckRunHealthResult:
        """A resume sent, not yet taken by any run worker (the team's worker is restarting)."""
        since = self._waiting_since.setdefault(run.run_id, time.monotonic())
        waited = time.monotonic() - since
        if waited < RESUME_TAKEN_WITHIN_SECONDS:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "resume waiting for a run worker")
        self._waiting_since.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"No warm run worker of team {team} took the resumed run in {waited:.0f}s. Start "
            f"the team's worker (docker compose up -d {team}-worker, or make dev) and "
            "re-execute the run from failure.",
        )

    def unreachable_broker_health(
        self, run: DagsterRun, team: str, error: Exception
    ) -> CheckRunHealthResult:
        """Nothing can be told apart from an outage the run rides out (orchestration.py)."""
        since = self._unreachable_since.setdefault(run.run_id, time.monotonic())
        silent = time.monotonic() - since
        if silent < UNREACHABLE_BROKER_SECONDS:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"cannot tell yet: {error}")
        self._unreachable_since.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Team {team}'s broker has been unreachable for {silent:.0f}s ({error}): the run's "
            "warm run worker is presumed lost with its run.",
        )
