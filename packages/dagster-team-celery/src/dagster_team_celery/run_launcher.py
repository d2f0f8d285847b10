"""The container-mode run launcher: dagster-docker's, with a Terminate that returns at once.

``DockerRunLauncher.terminate`` calls ``container.stop()``, which blocks the webserver's
GraphQL request until the run container exits, up to its ``stop_timeout`` (30 s here). The
engine's SIGTERM is all the run needs: the run process revokes and terminates its Celery steps
and reports CANCELED in a few seconds (orchestration.StepOrchestrator.stop). So the stop,
with the engine's SIGKILL after ``stop_timeout`` as the backstop, runs in a background thread.
"""

import threading

from dagster._core.storage.dagster_run import DagsterRun
from dagster_docker import DockerRunLauncher


class TeamDockerRunLauncher(DockerRunLauncher):
    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        container = self._get_container(run)
        if not container:
            self._instance.report_engine_event(
                message="Unable to get docker container to send termination request to.",
                dagster_run=run,
                cls=self.__class__,
            )
            return False
        stop_timeout = self.get_container_context(run).container_kwargs.get("stop_timeout")
        threading.Thread(
            target=self._stop_container,
            args=(container, stop_timeout, run),
            name=f"stop-run-{run_id[:8]}",
            daemon=True,
        ).start()
        return True

    def _stop_container(self, container, stop_timeout: int | None, run: DagsterRun) -> None:
        try:
            container.stop(timeout=stop_timeout)
        except Exception as error:  # the engine's own message says what went wrong
            self._instance.report_engine_event(
                message=f"Stopping run container {container.id[:12]} failed: {error}",
                dagster_run=run,
                cls=self.__class__,
            )
