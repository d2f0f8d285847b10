"""The platform as plain processes: the same topology docker compose runs, on loopback.

Postgres and Redis are throwaway servers started from local binaries (or URLs you pass in);
every team runs a code server and a Celery worker from its own virtualenv; the webserver,
the daemon and Flower run from the platform's virtualenv. ``LocalStack`` is both what
``make dev`` runs and what the tests start, so the tests exercise what developers use.
"""

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from devstack import config, config_check
from devstack.processes import Service, wait_until
from devstack.stack_lock import StackRunning, SupervisorLock, kill_leftovers

POSTGRES_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]
POSTGRES_USER = "dagster"
POSTGRES_DB = "dagster"
PLATFORM_BIN = Path(sys.prefix) / "bin"
SECRET_NAMES = ("postgres_password", "redis_password", "flower_password", "signing_key")
INFRASTRUCTURE = ("redis", "postgres")  # stopped last, in this order
# A service that keeps crashing is restarted at most this often.
MIN_RESTART_INTERVAL_SECONDS = 2.0


class StackError(RuntimeError):
    """The local stack could not start; the message says which service and why."""


@dataclass
class StackSettings:
    name: str = "dev"
    state_root: Path = config.REPO_ROOT / ".devstack"
    webserver_port: int = 0  # 0: any free port
    flower_port: int = 0
    postgres_url: str | None = None  # use this server instead of starting one
    redis_url: str | None = None
    teams: list[str] | None = None  # default: every team in workspace.yaml
    fresh: bool = False  # wipe the state folder first
    flower: bool = True
    restart_crashed: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # The checkout whose dagster.yaml, workspace.yaml and code_locations/ to run.
    repo_root: Path = config.REPO_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((config.LOCAL_HOST, 0))
        return probe.getsockname()[1]


def http_ok(url: str, auth_header: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth_header:
        request.add_header("Authorization", auth_header)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def grpc_serving(port: int) -> bool:
    """What `dagster api grpc-health-check` asks, without its Python start-up per check."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{config.LOCAL_HOST}:{port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=2
        )
    return response.status == health_pb2.HealthCheckResponse.SERVING


def worker_alive(liveness_file: Path, since: float = 0.0) -> bool:
    """Refreshed recently, and (given ``since``, a wall-clock time) after that moment: a
    killed worker leaves a fresh-looking file behind that its replacement must not inherit."""
    from dagster_team_celery.liveness import STALE_AFTER_SECONDS, seconds_since_alive

    age = seconds_since_alive(liveness_file)
    return age is not None and age < STALE_AFTER_SECONDS and time.time() - age >= since


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def check_postgres_lock_file(data_dir: Path) -> None:
    """A crashed stack can leave postmaster.pid behind. Postgres refuses to start while the
    pid in it runs, with a log line that does not say what to do; say it here instead."""
    lock_file = data_dir / "postmaster.pid"
    try:
        pid = int(lock_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return
    try:
        running = psutil.Process(pid).name().startswith("postgres")
    except psutil.NoSuchProcess:
        running = False
    if running:
        raise StackError(
            f"Postgres (pid {pid}) from an earlier local stack still runs on {data_dir}. Stop "
            f"that stack with `make dev-stop`, or `kill {pid}`, then start again."
        )
    # The process that wrote it is gone: the file is stale, and Postgres would trip over a pid
    # that another process reused.
    lock_file.unlink()


def liveness_file(state: Path, team: str) -> Path:
    return state / "run" / f"{team}-worker.alive"


def find_postgres_bin(name: str) -> Path:
    for directory in POSTGRES_BIN_DIRS:
        if (directory / name).exists():
            return directory / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise StackError(
        f"PostgreSQL's {name} was not found in {[str(d) for d in POSTGRES_BIN_DIRS]} or PATH. "
        "Install PostgreSQL 15 (apt-get install postgresql-15) or pass --postgres-url."
    )


class LocalStack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.state = self.settings.state_root / self.settings.name
        self.root = self.settings.repo_root
        self.teams = self.settings.teams or config.teams(self.root)
        self.services: dict[str, Service] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.ports: dict[str, int] = {}
        self.secrets: dict[str, str] = {}
        self.ready_seconds: dict[str, float] = {}  # per service, from its own start
        self.lock = SupervisorLock(self.state)
        self.startup_seconds = 0.0  # set once every service is healthy
        self.leftovers_killed = 0  # services a crashed earlier supervisor had left running

    # ---- folders, secrets and ports -------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.state / "home"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def artifact_cache(self) -> Path:
        return self.state / "artifact-cache"

    @property
    def shared(self) -> Path:
        return self.state / "shared"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.state / "postgres-socket"

    @property
    def webserver_url(self) -> str:
        return f"http://{config.LOCAL_HOST}:{self.ports['webserver']}"

    @property
    def flower_url(self) -> str:
        return f"http://{config.LOCAL_HOST}:{self.ports['flower']}"

    @property
    def flower_credentials(self) -> tuple[str, str]:
        return ("admin", self.secrets["flower_password"])

    def _prepare_state(self) -> None:
        if self.settings.fresh and self.state.exists():
            shutil.rmtree(self.state)
        for folder in (self.home, self.logs, self.artifact_cache, self.shared):
            folder.mkdir(parents=True, exist_ok=True)
        secrets_file = self.state / "secrets.json"
        if secrets_file.exists():
            self.secrets = json.loads(secrets_file.read_text())
        for name in SECRET_NAMES:
            self.secrets.setdefault(name, secrets.token_hex(24))
        secrets_file.write_text(json.dumps(self.secrets))
        secrets_file.chmod(0o600)

    def _allocate_ports(self) -> None:
        self.ports = {
            "postgres": free_port(),
            "redis": free_port(),
            "webserver": self.settings.webserver_port or free_port(),
            "flower": self.settings.flower_port or free_port(),
            **{f"{team}-code": free_port() for team in self.teams},
        }

    # ---- environment ----------------------------------------------------------------------

    def postgres_parts(self) -> dict[str, str]:
        if self.settings.postgres_url:
            url = urlsplit(self.settings.postgres_url)
            return {
                "host": url.hostname or config.LOCAL_HOST,
                "port": str(url.port or 5432),
                "user": url.username or POSTGRES_USER,
                "password": url.password or "",
                "db": url.path.lstrip("/") or POSTGRES_DB,
            }
        return {
            "host": config.LOCAL_HOST,
            "port": str(self.ports["postgres"]),
            "user": POSTGRES_USER,
            "password": self.secrets["postgres_password"],
            "db": POSTGRES_DB,
        }

    def redis_base_url(self) -> str:
        """The Redis URL without a database number; the broker uses /0, results /1."""
        if self.settings.redis_url:
            url = urlsplit(self.settings.redis_url)
            return f"{url.scheme}://{url.netloc}"
        return (
            f"redis://:{self.secrets['redis_password']}@{config.LOCAL_HOST}:{self.ports['redis']}"
        )

    def dagster_env(self) -> dict[str, str]:
        """What every Dagster process gets; the mirror of x-dagster-env in docker-compose.yml."""
        postgres = self.postgres_parts()
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DAGSTER_HOME")
        }
        return {
            **inherited,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_HOST": postgres["host"],
            "DAGSTER_POSTGRES_PORT": postgres["port"],
            "DAGSTER_POSTGRES_USER": postgres["user"],
            "DAGSTER_POSTGRES_PASSWORD": postgres["password"],
            "DAGSTER_POSTGRES_DB": postgres["db"],
            "DAGSTER_STORAGE_DIR": str(self.shared / "storage"),
            "DAGSTER_COMPUTE_LOGS_DIR": str(self.shared / "compute_logs"),
            "DAGSTER_CELERY_BROKER_URL": f"{self.redis_base_url()}/0",
            "DAGSTER_CELERY_BACKEND_URL": f"{self.redis_base_url()}/1",
            **self.settings.extra_env,
        }

    def team_tmpdir(self, team: str) -> Path:
        path = self.state / "tmp" / team
        path.mkdir(parents=True, exist_ok=True)
        return path

    def team_env(self, team: str) -> dict[str, str]:
        """What team code gets on top; the mirror of x-team-env in docker-compose.yml."""
        return {
            **self.dagster_env(),
            "DAGSTER_TEAM": team,
            "DAGSTER_WANDB_IO_BASE_DIR": str(self.artifact_cache),
            "DAGSTER_WANDB_IO_SIGNING_KEY": self.secrets["signing_key"],
            "WANDB_MODE": "offline",
            "WANDB_API_KEY": "",
            "WANDB_SILENT": "true",
            "DAGSTER_CELERY_LIVENESS_FILE": str(liveness_file(self.state, team)),
            # Per team, so a test can tell what a team's processes wrote to temporary files.
            "TMPDIR": str(self.team_tmpdir(team)),
            **self.settings.extra_env,
        }

    # ---- services -------------------------------------------------------------------------

    def _service(self, name: str, argv: list[str], env: dict[str, str], ready, **kwargs) -> Service:
        service = Service(
            name=name,
            argv=[str(part) for part in argv],
            env=env,
            cwd=kwargs.pop("cwd", self.root),
            log_path=self.logs / f"{name}.log",
            ready=ready,
            restart=kwargs.pop("restart", self.settings.restart_crashed),
            **kwargs,
        )
        self.services[name] = service
        return service

    def _postgres_service(self) -> Service:
        data_dir = self.state / "postgres"
        as_postgres_user = os.geteuid() == 0
        run_as = ["runuser", "-u", "postgres", "--"] if as_postgres_user else []
        if not (data_dir / "PG_VERSION").exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            password_file = self.state / "pgpass.tmp"
            password_file.write_text(self.secrets["postgres_password"])
            if as_postgres_user:
                shutil.chown(data_dir, "postgres", "postgres")
                data_dir.chmod(0o700)
                shutil.chown(password_file, "postgres", "postgres")
            try:
                subprocess.run(
                    [
                        *run_as,
                        find_postgres_bin("initdb"),
                        "--pgdata",
                        data_dir,
                        "--username",
                        POSTGRES_USER,
                        f"--pwfile={password_file}",
                        # Password on the socket too: anyone who can reach it is not trusted.
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        "--encoding=UTF8",
                        "--no-instructions",
                    ],
                    check=True,
                    capture_output=True,
                )
            except subprocess.CalledProcessError as error:
                raise StackError(
                    f"initdb failed: {error.stderr.decode(errors='replace')}"
                ) from error
            finally:
                password_file.unlink(missing_ok=True)
        check_postgres_lock_file(data_dir)
        socket_dir = self.postgres_socket_dir
        socket_dir.mkdir(parents=True, exist_ok=True)
        # Only the server's own user may reach the socket.
        socket_dir.chmod(0o700)
        if as_postgres_user:
            shutil.chown(socket_dir, "postgres", "postgres")
        return self._service(
            "postgres",
            [
                *run_as,
                find_postgres_bin("postgres"),
                "-D",
                data_dir,
                "-p",
                self.ports["postgres"],
                "-c",
                f"listen_addresses={config.LOCAL_HOST}",
                "-c",
                f"unix_socket_directories={socket_dir}",
                "-c",
                "max_connections=300",
                # Throwaway server: losing the last commits on a crash is acceptable, the
                # seconds of fsync on every Dagster event write are not.
                "-c",
                "synchronous_commit=off",
            ],
            dict(os.environ),
            ready=self._postgres_ready,
            # Fast shutdown: SIGTERM would wait for every client to disconnect.
            stop_signal=signal.SIGINT,
        )

    def _connect_to_server(self):
        """A connection to the server's maintenance database, which always exists."""
        import psycopg2

        postgres = self.postgres_parts()
        return psycopg2.connect(
            host=postgres["host"],
            port=postgres["port"],
            user=postgres["user"],
            password=postgres["password"],
            dbname="postgres",
            connect_timeout=2,
        )

    def _postgres_ready(self) -> bool:
        self._connect_to_server().close()
        return True

    def _create_database(self) -> None:
        postgres = self.postgres_parts()
        connection = self._connect_to_server()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (postgres["db"],))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{postgres["db"]}"')
        connection.close()

    def _redis_service(self) -> Service:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise StackError(
                "redis-server was not found on PATH. Install it (apt-get install redis-server) "
                "or pass --redis-url."
            )
        data_dir = self.state / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        # The password goes in an owner-only config file, never on the command line (`ps`).
        config_file = data_dir / "redis.conf"
        config_file.unlink(missing_ok=True)
        descriptor = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as conf:
            conf.write(f"requirepass {self.secrets['redis_password']}\n")
        return self._service(
            "redis",
            [
                redis_server,
                config_file,
                "--bind",
                config.LOCAL_HOST,
                "--port",
                self.ports["redis"],
                "--appendonly",
                "yes",
                "--dir",
                data_dir,
                "--save",
                "",
            ],
            dict(os.environ),
            ready=self._redis_ready,
        )

    def _redis_ready(self) -> bool:
        import redis

        client = redis.Redis.from_url(f"{self.redis_base_url()}/0", socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def _code_server(self, team: str) -> Service:
        port = self.ports[f"{team}-code"]

        return self._service(
            f"{team}-code",
            [
                config.team_bin(team, "dagster", self.root),
                "code-server",
                "start",
                "--host",
                config.LOCAL_HOST,
                "--port",
                port,
                "--module-name",
                f"{team}.definitions",
                "--location-name",
                team,
            ],
            self.team_env(team),
            ready=lambda: grpc_serving(port),
            cwd=config.team_dir(team, self.root),
        )

    def _worker(self, team: str) -> Service:
        env = self.team_env(team)
        liveness = Path(env["DAGSTER_CELERY_LIVENESS_FILE"])
        liveness.unlink(missing_ok=True)
        service = self._service(
            f"{team}-worker",
            [config.team_bin(team, "dagster-team-worker", self.root)],
            env,
            ready=lambda: worker_alive(liveness, since=service.started_wall),
            cwd=config.team_dir(team, self.root),
            # Warm shutdown: let running steps finish before the worker exits.
            stop_timeout=60.0,
        )
        return service

    def platform_env(self) -> dict[str, str]:
        """The webserver's and the daemon's environment: they load the local run launcher."""
        return {**self.dagster_env(), "PYTHONPATH": config.DEVSTACK_PYTHONPATH}

    def _webserver(self) -> Service:
        return self._service(
            "webserver",
            [
                PLATFORM_BIN / "dagster-webserver",
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
            self.platform_env(),
            ready=lambda: http_ok(f"{self.webserver_url}/server_info"),
        )

    def _daemon(self) -> Service:
        def ready() -> bool:
            result = subprocess.run(
                [PLATFORM_BIN / "dagster-daemon", "liveness-check"],
                env=self.platform_env(),
                capture_output=True,
                timeout=30,
            )
            return result.returncode == 0

        return self._service(
            "daemon",
            [PLATFORM_BIN / "dagster-daemon", "run", "--workspace", self.home / "workspace.yaml"],
            # The daemon hands its environment to run workers only through code servers in
            # local mode, so it needs no team secrets.
            self.platform_env(),
            ready=ready,
        )

    def _flower(self) -> Service:
        user, password = self.flower_credentials

        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return self._service(
            "flower",
            [PLATFORM_BIN / "celery", "flower"],
            {
                **self.dagster_env(),
                "CELERY_BROKER_URL": f"{self.redis_base_url()}/0",
                "FLOWER_BASIC_AUTH": f"{user}:{password}",
                "FLOWER_PORT": str(self.ports["flower"]),
                "FLOWER_ADDRESS": config.LOCAL_HOST,
            },
            ready=lambda: http_ok(f"{self.flower_url}/healthcheck", auth),
        )

    def instance_yaml(self) -> str:
        return config.local_instance_yaml(self.root)

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

    def _start_and_wait(self, services: list[Service], timeout: float) -> None:
        for service in services:
            service.start()
        pending = list(services)
        began = time.monotonic()
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                if not service.is_running():
                    raise StackError(
                        f"{service.name} exited with code {service.process.returncode} while "
                        f"starting. Last lines of {service.log_path}:\n{service.log_tail()}"
                    )
                if service.is_ready():
                    pending.remove(service)
                    self.ready_seconds[service.name] = round(time.monotonic() - began, 2)
            time.sleep(0.1)
        if pending:
            names = ", ".join(service.name for service in pending)
            tails = "\n".join(f"--- {s.name} ({s.log_path}):\n{s.log_tail()}" for s in pending)
            raise StackError(f"Not healthy after {timeout:.0f}s: {names}\n{tails}")

    def _migrate(self) -> None:
        result = subprocess.run(
            [PLATFORM_BIN / "dagster", "instance", "migrate"],
            env=self.platform_env(),
            capture_output=True,
            text=True,
        )
        (self.logs / "migrate.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(f"dagster instance migrate failed:\n{result.stdout}{result.stderr}")

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
        self._prepare_state()
        self._allocate_ports()
        (self.home / "dagster.yaml").write_text(self.instance_yaml())
        code_ports = {team: self.ports[f"{team}-code"] for team in self.teams}
        (self.home / "workspace.yaml").write_text(
            config.local_workspace_yaml(code_ports, self.root)
        )
        started = time.monotonic()
        try:
            infrastructure = []
            if not self.settings.postgres_url:
                infrastructure.append(self._postgres_service())
            if not self.settings.redis_url:
                infrastructure.append(self._redis_service())
            self._start_and_wait(infrastructure, timeout)
            self._create_database()
            migrate_started = time.monotonic()
            self._migrate()
            self.ready_seconds["migrate"] = round(time.monotonic() - migrate_started, 2)
            platform = [
                *(self._code_server(team) for team in self.teams),
                *(self._worker(team) for team in self.teams),
                self._webserver(),
                self._daemon(),
            ]
            if self.settings.flower:
                platform.append(self._flower())
            self._start_and_wait(platform, timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self._write_status()
        self._monitor = threading.Thread(target=self._supervise, name="devstack-supervisor")
        self._monitor.daemon = True
        self._monitor.start()
        return self

    def _supervise(self) -> None:
        """Restart services that die, as compose's `restart: unless-stopped` does."""
        while not self._stopping.wait(1.0):
            for service in list(self.services.values()):
                if self._stopping.is_set():
                    return
                crashed = service.process is not None and service.process.poll() is not None
                backed_off = time.monotonic() - service.started_at >= MIN_RESTART_INTERVAL_SECONDS
                if service.restart and crashed and backed_off:
                    service.restarts += 1
                    service.start()
                    self._write_status()

    def _write_status(self) -> None:
        status = {
            "name": self.settings.name,
            "repo_root": str(self.root),
            "webserver": self.webserver_url,
            "flower": self.flower_url if self.settings.flower else None,
            "ports": self.ports,
            "supervisor_pid": os.getpid(),
            "pids": {name: service.pid for name, service in self.services.items()},
            # With start times, so `make dev-stop` never kills a process that reused a pid.
            "processes": {
                name: {"pid": service.pid, "started": process_start_time(service.pid)}
                for name, service in self.services.items()
                if service.pid is not None
            },
            "logs": str(self.logs),
            "startup_seconds": round(self.startup_seconds, 2),
            "ready_seconds": self.ready_seconds,
        }
        # Written whole and renamed: `make redeploy` reads it while the supervisor rewrites it.
        pending = self.state / "status.json.tmp"
        pending.write_text(json.dumps(status, indent=2))
        os.replace(pending, self.state / "status.json")

    def stop(self) -> None:
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(5)
        # Dependents first, in parallel; then Redis and Postgres, like compose.
        infrastructure = [self.services[name] for name in INFRASTRUCTURE if name in self.services]
        dependents = [s for s in self.services.values() if s.name not in INFRASTRUCTURE]
        threads = [threading.Thread(target=service.stop) for service in dependents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for service in infrastructure:
            service.stop()
        self.lock.release()

    def restart_service(self, name: str, timeout: float = 60.0) -> None:
        service = self.services[name]
        service.stop()
        service.start()
        if not wait_until(service.is_ready, timeout):
            raise StackError(f"{name} did not become healthy again:\n{service.log_tail()}")

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
