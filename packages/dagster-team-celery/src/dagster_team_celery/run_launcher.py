"""The container-mode run launcher: dagster-docker's, with a Terminate that returns at once.

``DockerRunLauncher.terminate`` calls ``container.stop()``, which blocks the webserver's
GraphQL request until the run container exits, up to its ``stop_timeout`` (30 s here). Even
finding the container costs two engine round trips (``from_env`` negotiates the API version,
then ``containers.get``), which on a loaded engine take seconds. The engine's SIGTERM is all the
run needs: the run process revokes and terminates its Celery steps and reports CANCELED in a
few seconds (orchestration.StepOrchestrator.stop). So the request only records CANCELING, and
the lookup and the stop, with the engine's SIGKILL after ``stop_timeout`` as the backstop, run
in a background thread.
"""

import threading

from dagster._core.storage.dagster_run import DagsterRun
from dagster_docker import DockerRunLauncher
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

import docker


class TeamDockerRunLauncher(DockerRunLauncher):
    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        if not run.tags.get(DOCKER_CONTAINER_ID_TAG):
            self._report(run, "Unable to get docker container to send termination request to.")
            return False
        self._instance.report_run_canceling(run)
        threading.Thread(
            target=self._stop_container,
            args=(run,),
            name=f"stop-run-{run_id[:8]}",
            daemon=True,
        ).start()
        return True

    def _stop_container(self, run: DagsterRun) -> None:
        container_id = run.tags[DOCKER_CONTAINER_ID_TAG]
        context = self.get_container_context(run)
        try:
            container = self._get_client(context).containers.get(container_id)
            container.stop(timeout=context.container_kwargs.get("stop_timeout"))
        except docker.errors.NotFound:
            self._report(run, f"Run container {container_id[:12]} is gone; nothing to stop.")
        except Exception as error:  # the engine's own message says what went wrong
            self._report(run, f"Stopping run container {container_id[:12]} failed: {error}")

    def _report(self, run: DagsterRun, message: str) -> None:
        self._instance.report_engine_event(message=message, dagster_run=run, cls=self.__class__)
