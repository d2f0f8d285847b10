"""The platform as plain processes: the same topology docker compose runs, on loopback.

Postgres and Redis are throwaway servers started from local binaries (or URLs you pass in);
every team runs a code server and a Celery worker from its own virtualenv; the webserver,
the daemon and Flower run from the platform's virtualenv. ``LocalStack`` is both what
``make dev`` runs and what the tests start, so the tests exercise what developers use.

This module composes the stack; each part has a module of its own:

- ``devstack.environment``: settings, the state folder, secrets, ports and each process's
  environment (``LocalStack`` is a ``StackEnvironment``);
- ``devstack.infra``: the Postgres and Redis servers;
- ``devstack.health``: the probes that tell when a service is ready;
- ``devstack.supervisor``: starting, restarting and stopping the services;
- ``devstack.code_reload``: a team's workers restarted when a Reload gives it new code.
"""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2

from dagster_team_celery.deploy.daemon_health import heartbeats_since
from dagster_team_celery.settings import BROKER_URL_ENV
from dagster_team_celery.workers.liveness import LIVENESS_FILE_ENV, role_liveness_path
from dagster_wandb_io.keys import TRUSTED_KEYS_ENV, write_private
from devstack import config, config_check, infra
from devstack.code_reload import CodeReloadWatcher
from devstack.environment import StackEnvironment, StackSettings, free_port
from devstack.errors import StackError
from devstack.health import grpc_serving, http_ok, worker_alive
from devstack.processes import Service
from devstack.stack_lock import StackRunning, SupervisorLock, kill_leftovers
from devstack.supervisor import Supervisor

# The names the tests and benchmarks take from here, beside the stack itself.
__all__ = ["LocalStack", "StackError", "StackSettings", "free_port"]

PLATFORM_BIN = Path(sys.prefix) / "bin"
# As compose's stop_grace_period for a team's worker: the runs in flight drain (up to two
# minutes), then the steps in flight finish; whatever is still running after that is killed.
WORKER_STOP_TIMEOUT = 180.0


class LocalStack(StackEnvironment):
    def __init__(self, settings: StackSettings | None = None) -> None:
        super().__init__(settings)
        self.supervisor = Supervisor(
            self.logs, self.root, self.settings.restart_crashed, on_restart=self._write_status
        )
        self.lock = SupervisorLock(self.state)
        self.startup_seconds = 0.0  # set once every service is healthy
        self.leftovers_killed = 0  # services a crashed earlier supervisor had left running
        # Restarts a team's workers when a Reload gives its code server new code.
        self.code_reload: CodeReloadWatcher | None = None

    @property
    def progress(self) -> Callable[[str], None]:
        """Where start-up progress goes (`make dev` prints it; tests keep it quiet)."""
        return self.supervisor.progress

    @progress.setter
    def progress(self, say: Callable[[str], None]) -> None:
        self.supervisor.progress = say

    @property
    def services(self) -> dict[str, Service]:
        return self.supervisor.services

    @property
    def ready_seconds(self) -> dict[str, float]:
        """Per service: seconds from its batch's start until healthy; and migrate's seconds."""
        return self.supervisor.ready_seconds

    # ---- services -------------------------------------------------------------------------

    def _service(self, name: str, argv: list, env: dict[str, str], ready, **kwargs) -> Service:
        return self.supervisor.add(name, argv, env, ready, **kwargs)

    def _grpc_code_server(
        self, service: str, dagster: Path, module: str, location: str, env: dict[str, str], **kw
    ) -> Service:
        port = self.ports[service]
        return self._service(
            service,
            [
                dagster,
                "code-server",
                "start",
                "--host",
                config.LOCAL_HOST,
                "--port",
                port,
                "--module-name",
                module,
                "--location-name",
                location,
            ],
            env,
            ready=lambda: grpc_serving(port),
            **kw,
        )

    def _code_server(self, team: str) -> Service:
        return self._grpc_code_server(
            f"{team}-code",
            config.team_bin(team, "dagster", self.root),
            f"{team}.definitions",
            team,
            self.team_env(team),
            cwd=self.team_code_dir(team),
        )

    def _platform_code_server(self) -> Service:
        """The `platform` code location (cache eviction), from the platform's own venv, as
        compose's platform-code serves it from the platform image."""
        return self._grpc_code_server(
            config.PLATFORM_CODE_SERVICE,
            PLATFORM_BIN / "dagster",
            config.PLATFORM_MODULE,
            config.PLATFORM_LOCATION,
            self.platform_code_env(),
        )

    def _worker(self, team: str) -> Service:
        """The team's step worker and (with warm runs) its run worker, forked from one
        preloaded process, stopped through that process alone (as `docker stop` does): it
        drains the runs in flight, then lets the steps in flight finish."""
        roles = self.worker_roles
        env = self.team_env(team)
        base = Path(env[LIVENESS_FILE_ENV])
        for role in roles:
            role_liveness_path(role, base).unlink(missing_ok=True)
        service = self._service(
            f"{team}-worker",
            [config.team_bin(team, "dagster-team-worker", self.root), *roles],
            env,
            ready=lambda: all(
                worker_alive(role_liveness_path(role, base), since=service.started_wall)
                for role in roles
            ),
            cwd=self.team_code_dir(team),
            signal_group=False,
            stop_timeout=WORKER_STOP_TIMEOUT,
        )
        return service

    def _webserver(self) -> Service:
        return self._service(
            "webserver",
            [
                # The platform's webserver, as in docker-compose.yml; without roles here
                # (environment.py): it listens on loopback, for the one person at this machine.
                PLATFORM_BIN / "dagster-platform-webserver",
                "--host",
                config.LOCAL_HOST,
                "--port",
                self.ports["webserver"],
                "--workspace",
                self.home / "workspace.yaml",
                # As in docker-compose.yml: no pooled connection outlives a Postgres restart.
                "--db-pool-recycle",
                "0",
            ],
            self.webserver_env(),
            ready=lambda: http_ok(f"{self.webserver_url}/server_info"),
        )

    def _daemon(self) -> Service:
        def ready() -> bool:
            # Its heartbeats since this process started, read from the instance's database as
            # compose's check reads them, rather than `dagster-daemon liveness-check`: a Python
            # that imports Dagster (2 s of CPU, 20 s on busy cores), and the tests ask before
            # each of theirs.
            if not service.is_running():
                return False
            started = time.time() - (time.monotonic() - service.started_at)
            postgres = self.postgres_parts()
            connection = {key: postgres[key] for key in ("host", "port", "user", "password")}
            try:
                return heartbeats_since({**connection, "dbname": postgres["db"]}, started) > 0
            except psycopg2.Error:
                return False

        service = self._service(
            "daemon",
            [PLATFORM_BIN / "dagster-daemon", "run", "--workspace", self.home / "workspace.yaml"],
            # The launcher sends each team's runs as that team's Redis user (launcher_redis_env).
            self.platform_env(),
            ready=ready,
        )
        return service

    def _flower(self) -> Service:
        user, password = self.flower_credentials
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return self._service(
            "flower",
            [PLATFORM_BIN / "celery", "-A", "dagster_team_celery.deploy.flower_app", "flower"],
            {
                **self.dagster_env(),
                BROKER_URL_ENV: self.flower_redis_url(),
                "FLOWER_BASIC_AUTH": f"{user}:{password}",
                "FLOWER_PORT": str(self.ports["flower"]),
                "FLOWER_ADDRESS": config.LOCAL_HOST,
            },
            ready=lambda: http_ok(f"{self.flower_url}/healthcheck", auth),
        )

    @property
    def warm_runs(self) -> bool:
        return self.settings.run_launcher == "warm"

    @property
    def worker_roles(self) -> tuple[str, ...]:
        """What each team's worker consumes: its step queue and, with warm runs, its run
        queue (`dagster-team-worker`'s roles)."""
        return ("steps", "runs") if self.warm_runs else ("steps",)

    def instance_yaml(self) -> str:
        return config.local_instance_yaml(self.root, self.settings.run_launcher)

    # ---- lifecycle ------------------------------------------------------------------------

    def _check_team_venvs(self) -> None:
        missing = [
            team for team in self.teams if not config.team_bin(team, "dagster", self.root).exists()
        ]
        if missing:
            raise StackError(
                f"No virtualenv for team(s) {', '.join(missing)}: run `make venvs` (it runs "
                "`uv sync --frozen` in each code_locations/<team>)."
            )

    def _run_once(self, log_name: str, argv: list, env: dict[str, str]) -> None:
        """A one-off platform command, as compose's init service runs them: its output in
        logs/<log_name>.log, its failure a StackError."""
        result = subprocess.run(argv, env=env, capture_output=True, text=True)
        (self.logs / f"{log_name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(map(str, argv[:3]))} failed:\n{result.stdout}{result.stderr}"
            )

    def _migrate(self) -> None:
        self._run_once(
            "migrate", [PLATFORM_BIN / "dagster", "instance", "migrate"], self.platform_env()
        )
        if not self.settings.postgres_url:
            # As compose's init, after the migration: each team's own role.
            script = self.state / "postgres-roles.sql"
            write_private(script, self.postgres_roles_script())
            self._run_once(
                "postgres-roles",
                [PLATFORM_BIN / "dagster-platform-postgres-roles", script],
                self.platform_env(),
            )

    def _prepare_object_store(self) -> None:
        """As compose's init service: the bucket exists before anything writes to it, and W&B
        artifacts kept only in the cache folder (before the object store) move into it."""
        env = {
            **self.platform_env(),
            "DAGSTER_WANDB_IO_BASE_DIR": str(self.artifact_cache),
            TRUSTED_KEYS_ENV: str(self.trust_file),
        }
        self._run_once(
            "ensure-bucket",
            [PLATFORM_BIN / "dagster-platform-object-store", "ensure-bucket", "--timeout", "60"],
            env,
        )
        self._run_once(
            "store-migrate", [PLATFORM_BIN / "dagster-wandb-io", "store", "migrate"], env
        )

    def start(self, timeout: float = 180.0) -> "LocalStack":
        try:
            # Before the state folder is touched: a config mistake must cost nothing.
            config_check.check(self.root)
        except config_check.ConfigProblem as problems:
            raise StackError(
                f"Nothing was started; fix the configuration first:\n{problems}"
            ) from None
        self._check_team_venvs()
        try:
            self.lock.acquire()
        except StackRunning as running:
            raise StackError(str(running)) from None
        self.leftovers_killed = kill_leftovers(self.state)
        self.prepare_state()
        self.allocate_ports()
        (self.home / "dagster.yaml").write_text(self.instance_yaml())
        code_ports = {team: self.ports[f"{team}-code"] for team in self.teams}
        code_ports[config.PLATFORM_LOCATION] = self.ports[config.PLATFORM_CODE_SERVICE]
        (self.home / "workspace.yaml").write_text(
            config.local_workspace_yaml(code_ports, self.root)
        )
        started = time.monotonic()
        try:
            infrastructure = []
            if not self.settings.postgres_url:
                infrastructure.append(infra.postgres_service(self, self.supervisor))
            if not self.settings.redis_url:
                infrastructure.append(infra.redis_service(self, self.supervisor))
            if not self.settings.object_store_url:
                infrastructure.append(infra.object_store_service(self, self.supervisor))
            self.progress("Postgres, Redis and the object store:")
            self.supervisor.start_and_wait(infrastructure, timeout)
            infra.create_database(self)
            self.progress("Creating the bucket and moving W&B artifacts into the store...")
            self._prepare_object_store()
            self.progress("Migrating the Dagster instance...")
            migrate_started = time.monotonic()
            self._migrate()
            self.ready_seconds["migrate"] = round(time.monotonic() - migrate_started, 2)
            platform = [
                self._platform_code_server(),
                *(self._code_server(team) for team in self.teams),
                *(self._worker(team) for team in self.teams),
                self._webserver(),
                self._daemon(),
            ]
            if self.settings.flower:
                platform.append(self._flower())
            self.progress(f"Code servers, workers, webserver, daemon ({len(platform)} services):")
            self.supervisor.start_and_wait(platform, timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._write_status()
        self.supervisor.watch()
        self.code_reload = CodeReloadWatcher(
            {team: self.ports[f"{team}-code"] for team in self.teams}, self.team_workers
        )
        self.code_reload.start()
        return self

    def team_workers(self, team: str) -> list[Service]:
        """The team's workers: its step worker and, with warm runs, its run worker, which
        share one service."""
        return [self.services[f"{team}-worker"]]

    def _write_status(self) -> None:
        status = {
            "name": self.settings.name,
            "repo_root": str(self.root),
            "webserver": self.webserver_url,
            "flower": self.flower_url if self.settings.flower else None,
            "ports": self.ports,
            "supervisor_pid": os.getpid(),
            "pids": {name: service.pid for name, service in self.services.items()},
            "worker_roles": list(self.worker_roles),
            # With start times, so `make dev-stop` never kills a process that reused a pid.
            "processes": self.supervisor.process_records(),
            "logs": str(self.logs),
            "startup_seconds": round(self.startup_seconds, 2),
            "ready_seconds": self.ready_seconds,
        }
        # Written whole and renamed: `make redeploy` reads it while the supervisor rewrites it.
        pending = self.state / "status.json.tmp"
        pending.write_text(json.dumps(status, indent=2))
        os.replace(pending, self.state / "status.json")

    def stop(self) -> None:
        if self.code_reload is not None:
            self.code_reload.stop()
        self.supervisor.stop()
        self.lock.release()

    def restart_service(self, name: str, timeout: float = 60.0) -> None:
        self.supervisor.restart_service(name, timeout)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
