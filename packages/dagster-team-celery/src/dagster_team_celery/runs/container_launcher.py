"""The container-mode run launcher: dagster-docker's, with the platform alone deciding what a run
container gets, and a Terminate that returns at once.

**What a run container gets.** ``DockerRunLauncher`` merges in the container context that the
run's code server reports (``DAGSTER_CONTAINER_CONTEXT``). The code server runs the team's
code, so a hostile team could report ``privileged``, a bind mount of the host's ``/`` or the
engine socket, or the name of another team's secret in the daemon's environment, and the
daemon would start its run container that way. This launcher ignores the reported context and
uses only the platform's: its own config (dagster.yaml) and ``DAGSTER_RUN_CONTAINER_CONTEXT``
in the launching process's environment (docker-compose.yml sets it on the daemon and the
webserver).

**Terminate.**
``DockerRunLauncher.terminate`` calls ``container.stop()``, which blocks the webserver's
GraphQL request until the run container exits, up to its ``stop_timeout`` (30 s here). Even
finding the container costs two engine round trips (``from_env`` negotiates the API version,
then ``containers.get``), which on a loaded engine take seconds. The engine's SIGTERM is all the
run needs: the run process revokes and terminates its Celery steps and reports CANCELED in a
few seconds (orchestration.StepOrchestrator.stop). So the request only records CANCELING, and
the lookup and the stop, with the engine's SIGKILL after ``stop_timeout`` as the backstop, run
in a background thread.
"""

import json
import os
import threading

from dagster._core.storage.dagster_run import DagsterRun
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

import docker
from dagster_team_celery.runs.credentials import (
    broker_env_for,
    object_store_env_for,
    postgres_env_for,
)
from dagster_team_celery.runs.warm_launcher import run_team

RUN_CONTAINER_CONTEXT_ENV = "DAGSTER_RUN_CONTAINER_CONTEXT"


def platform_container_context() -> dict:
    raw = os.environ.get(RUN_CONTAINER_CONTEXT_ENV, "").strip()
    if not raw:
        return {}
    try:
        context = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{RUN_CONTAINER_CONTEXT_ENV} is not JSON ({error}). Set it as docker-compose.yml's "
            'x-run-container-context does: {"docker": {"networks": [...], ...}}.'
        ) from error
    if not isinstance(context, dict):
        raise ValueError(f"{RUN_CONTAINER_CONTEXT_ENV} must be a JSON object, not {raw!r}.")
    return context


class TeamDockerRunLauncher(DockerRunLauncher):
    def get_container_context(self, dagster_run: DagsterRun) -> DockerContainerContext:
        # Deliberately not DockerContainerContext.create_for_run: that merges the context the
        # team's code server reported (see the module docstring).
        launcher_context = DockerContainerContext(
            registry=self.registry,
            env_vars=self.env_vars,
            networks=self.networks,
            container_kwargs=self.container_kwargs,
        )
        # A run with no code location (an ad-hoc run) gets no team's broker user.
        team = run_team(dagster_run) if dagster_run.remote_job_origin else None
        team_env = (
            [*broker_env_for(team), *postgres_env_for(team), *object_store_env_for(team)]
            if team
            else []
        )
        team_context = DockerContainerContext(env_vars=team_env)
        return launcher_context.merge(
            DockerContainerContext.create_from_config(platform_container_context())
        ).merge(team_context)

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
