"""The default run launcher: each run goes to its team's warm run workers through the broker.

Launching a run sends one task, named after the run, to the team's run queue
(settings.run_queue), under the team's key prefix, as the launcher's own Redis user
(redis_acl.py; it reaches every team's keys, so a new team changes nothing in the daemon or the
webserver). Whichever warm run worker of the team takes it, on any host, executes the run in a
pool process forked from an interpreter that has already imported the team's code
(run_worker.py, run_task.py). No container is started and no engine socket is involved.

**Health.** Run monitoring asks ``check_run_worker_health`` about every STARTED run. The
task's state in the result backend answers most of it in one read:

- FAILURE, SUCCESS or REVOKED while the run has not ended: the run's process is gone (Celery
  records a pool process's death, e.g. ``signal 9 (SIGKILL)``, as the task's failure);
- STARTED names the worker running it, and the team's workers are asked which tasks they run.
  A run that its worker no longer lists (a restarted worker keeps its name but not its tasks),
  or whose worker stays silent while the team's other workers answer, is lost after
  ``MISSES_BEFORE_LOST`` checks in a row. When the broker answers but no worker of the team
  does (the host or container of the team's only workers died), the run is failed after
  ``SILENT_TEAM_SECONDS``. When the broker is down, nothing can be told apart from an outage
  that the run rides out, so the run is failed only after ``UNREACHABLE_BROKER_SECONDS``.

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
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dagster_team_celery.control import team_app
from dagster_team_celery.run_task import RUN_TASK_NAME
from dagster_team_celery.settings import celery_settings, run_queue

# Checks in a row (10 s apart, dagster.yaml's run_monitoring) that must miss the run: one miss
# may be a busy machine or a worker still reconnecting after a broker restart.
MISSES_BEFORE_LOST = 3
# How long no worker of the team may answer, while the broker does, before its STARTED runs
# are failed: three or four checks in a row, so a busy worker that misses one is not taken for
# dead, and a run whose container died ends within run monitoring's minute.
SILENT_TEAM_SECONDS = 30.0
# How long the broker may be unreachable before the team's STARTED runs are failed: the runs
# ride out a broker restart (orchestration.py).
UNREACHABLE_BROKER_SECONDS = 120.0
INSPECT_TIMEOUT_SECONDS = 2.0
# One inspection of the team's workers answers for all of its runs checked within this long.
ACTIVE_TASKS_CACHE_SECONDS = 5.0
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
        self._silent_since: dict[str, float] = {}
        self._active: dict[str, tuple[float, dict[str, set[str]]]] = {}
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
            meta = app.backend.get_task_meta(run.run_id)
            state = meta.get("status", states.PENDING)
            if state in ENDED_TASK_STATES:
                return self.ended_task_health(run, state, meta)
            if state != states.STARTED:
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"run task is {state}")
            active = self.active_tasks(app, team)
        except BROKER_ERRORS as error:
            return self.silent_team_health(
                run, team, f"the broker is unreachable: {error}", UNREACHABLE_BROKER_SECONDS
            )
        started = meta.get("result") or {}
        worker, pid = started.get("hostname", "?"), started.get("pid", "?")
        if not active:
            return self.silent_team_health(
                run, team, "no worker of the team answered", SILENT_TEAM_SECONDS
            )
        self._silent_since.pop(run.run_id, None)
        if run.run_id in active.get(worker, set()):
            self._misses.pop(run.run_id, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        misses = self._misses.get(run.run_id, 0) + 1
        self._misses[run.run_id] = misses
        if misses < MISSES_BEFORE_LOST:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{worker} did not list the run")
        self._misses.pop(run.run_id, None)
        how = "was restarted" if worker in active else "died"
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Warm run worker {worker} no longer runs this run (its process was pid {pid}): the "
            f"worker {how} while the run was in flight.",
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

    def silent_team_health(
        self, run: DagsterRun, team: str, why: str, patience: float
    ) -> CheckRunHealthResult:
        silent_since = self._silent_since.setdefault(run.run_id, time.monotonic())
        silent = time.monotonic() - silent_since
        if silent < patience:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"cannot tell yet: {why}")
        self._silent_since.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"No worker of team {team} has answered for {silent:.0f}s ({why}): the run's warm "
            "run worker is presumed dead with its run.",
        )

    def active_tasks(self, app: Celery, team: str) -> dict[str, set[str]]:
        """Worker name -> ids of the tasks it is running, for the team's workers that answer."""
        checked_at, active = self._active.get(team, (0.0, {}))
        if time.monotonic() - checked_at > ACTIVE_TASKS_CACHE_SECONDS:
            replies = app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active() or {}
            active = {worker: {task["id"] for task in tasks} for worker, tasks in replies.items()}
            self._active[team] = (time.monotonic(), active)
        return active
