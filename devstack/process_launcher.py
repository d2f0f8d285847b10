"""The run launcher of local process mode.

DefaultRunLauncher starts each run as a subprocess of its team's code server but reports no
worker health, so run monitoring cannot tell a run whose process died (a crashed orchestrator,
a restarted code server) from one still running: such a run would stay STARTED forever. In
local mode every process runs on this host, so the health check simply asks whether the
process that started the run (the pid on its RUN_START event) is still alive.
"""

import os

from dagster import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun


class LocalRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def run_worker_pid(self, run_id: str) -> int | None:
        records = self._instance.get_records_for_run(
            run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = records[0].event_log_entry.dagster_event if records else None
        return event.pid if event else None

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self.run_worker_pid(run.run_id)
        if pid is None:
            # Not started yet; run monitoring's start timeout covers a run that never starts.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"run worker process {pid} exited without finishing the run (it crashed, or its "
                "code server was restarted)",
            )
        except PermissionError:
            pass  # alive, owned by another user
        return CheckRunHealthResult(WorkerStatus.RUNNING)
