"""The entrypoint of every platform and team service on a Docker Swarm (docker-stack.yml).

Swarm keeps secrets out of a service's definition: each is a file under /run/secrets, readable
only inside the container. Dagster's instance config, Celery and boto3 read theirs from the
environment, so this reads each secret file whose name is an environment variable's name into
that variable, then replaces itself with the service's command:

    dagster-platform-entrypoint [--wait-for-instance] -- dagster-daemon run ...

Swarm also starts services in no order (it ignores `depends_on`), and the instance schema is
created by a one-off job (`init`). `--wait-for-instance` holds a service until that job has
brought Postgres to Dagster's current schema, instead of letting it crash and restart.
The health checks use it too (without waiting), as they run without the entrypoint's
environment.

`--address-in SUBNET` puts this container's own address in that subnet where the command says
`{address}`. The webserver listens only on the UI network (where only its login proxy is), and in
compose it binds to its alias there; on Swarm a name resolves only once its task is healthy,
which it cannot be before it listens.

`--address-toward NAME` puts there the address this container uses to reach NAME instead. A
team's code server listens only on its team's code network, whose only other member is the
code gateway: it binds to its address toward the gateway, a name that resolves, from the code
server, only on that network (in compose, and on Swarm once the gateway is healthy, which does
not wait for any code server).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

SECRETS_DIR = Path("/run/secrets")
# An environment variable's name; other files in the folder (none by default) are left alone.
VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
WAIT_LOG_EVERY_SECONDS = 15.0


def secrets_as_environment(folder: Path = SECRETS_DIR) -> dict[str, str]:
    """Each secret file named like an environment variable, as that variable (one trailing
    newline dropped, as `echo secret > file` adds one)."""
    if not folder.is_dir():
        return {}
    variables: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and VARIABLE_NAME.fullmatch(path.name):
            value = path.read_text()
            variables[path.name] = value[:-1] if value.endswith("\n") else value
    return variables


def instance_schema_revisions(environment: Mapping[str, str]) -> tuple[str | None, str]:
    """(the database's Dagster schema revision, the revision this Dagster needs). Reads only:
    opening the instance would create the tables itself and race the init job's migration."""
    import sqlalchemy as db
    from dagster._core.storage.sql import check_alembic_revision
    from dagster_postgres.run_storage import run_storage
    from dagster_postgres.utils import get_conn_string, pg_alembic_config

    url = get_conn_string(
        username=environment["DAGSTER_POSTGRES_USER"],
        password=environment["DAGSTER_POSTGRES_PASSWORD"],
        hostname=environment["DAGSTER_POSTGRES_HOST"],
        port=environment.get("DAGSTER_POSTGRES_PORT", "5432"),
        db_name=environment["DAGSTER_POSTGRES_DB"],
        # As dagster.yaml: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, not shipped.
        scheme="postgresql+psycopg2",
    )
    engine = db.create_engine(url, poolclass=db.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            return check_alembic_revision(pg_alembic_config(run_storage.__file__), connection)
    finally:
        engine.dispose()


def wait_for_instance(
    environment: Mapping[str, str], timeout_seconds: float, poll_seconds: float = 2.0
) -> None:
    """Returns once the instance schema is current; exits naming what is missing otherwise."""
    started = time.monotonic()
    last_logged = -WAIT_LOG_EVERY_SECONDS
    while True:
        try:
            current, head = instance_schema_revisions(environment)
            if current == head:
                return
            reason = f"schema revision {current or 'none'}, this Dagster needs {head}"
        except KeyError as missing:
            sys.exit(
                f"dagster-platform-entrypoint: {missing.args[0]} is not set: give the service the "
                "instance's DAGSTER_POSTGRES_* variables (and the password as a secret)."
            )
        except Exception as error:  # any connection error means "not yet"
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
        waited = time.monotonic() - started
        if waited >= timeout_seconds:
            sys.exit(
                f"dagster-platform-entrypoint: the Dagster instance is not ready after "
                f"{waited:.0f}s ({reason}). The `init` job creates and migrates it: see its "
                "logs (`docker service logs <stack>_init`)."
            )
        if waited - last_logged >= WAIT_LOG_EVERY_SECONDS:
            print(f"waiting for the Dagster instance ({reason})", file=sys.stderr, flush=True)
            last_logged = waited
        time.sleep(poll_seconds)


def own_address_in(subnet: str) -> str:
    """This host's address on the network of `subnet`: the source address toward it."""
    network = ipaddress.ip_network(subnet)
    address = source_address_toward(str(network.broadcast_address - 1))
    if ipaddress.ip_address(address) not in network:
        sys.exit(
            f"dagster-platform-entrypoint: this container has no address in {subnet} (it has "
            f"{address} toward it): attach it to the network of that subnet."
        )
    return address


def own_address_toward(name: str, timeout_seconds: float = 300.0, poll_seconds: float = 1.0) -> str:
    """The source address this host uses to reach `name`, once `name` resolves (a peer may be
    starting, or on Swarm not yet healthy); exits naming the peer after `timeout_seconds`."""
    started = time.monotonic()
    last_logged = -WAIT_LOG_EVERY_SECONDS
    while True:
        try:
            peer = socket.getaddrinfo(name, 9, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
            break
        except socket.gaierror as error:
            waited = time.monotonic() - started
            if waited >= timeout_seconds:
                sys.exit(
                    f"dagster-platform-entrypoint: {name!r} does not resolve after {waited:.0f}s "
                    f"({error.strerror}): attach this service to a network {name} is on, and "
                    f"see why {name} is not running (`docker compose ps {name}`)."
                )
            if waited - last_logged >= WAIT_LOG_EVERY_SECONDS:
                print(f"waiting for {name} to resolve", file=sys.stderr, flush=True)
                last_logged = waited
            time.sleep(poll_seconds)
    return source_address_toward(peer)


def source_address_toward(peer: str) -> str:
    """The address the kernel picks to send to `peer` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((peer, 9))
        return probe.getsockname()[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dagster-platform-entrypoint", description=__doc__)
    parser.add_argument(
        "--wait-for-instance",
        action="store_true",
        help="start the command only once the instance schema is current (the init job ran)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most")
    parser.add_argument(
        "--address-in", metavar="SUBNET", help="replace {address} in the command by this host's"
    )
    parser.add_argument(
        "--address-toward",
        metavar="NAME",
        help="replace {address} in the command by this host's address toward NAME",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    arguments = parser.parse_args(argv)
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if not command:
        parser.error("no command given: dagster-platform-entrypoint [--wait-for-instance] -- CMD")
    if arguments.address_in or arguments.address_toward:
        address = (
            own_address_in(arguments.address_in)
            if arguments.address_in
            else own_address_toward(arguments.address_toward, arguments.timeout)
        )
        command = [part.replace("{address}", address) for part in command]
    os.environ.update(secrets_as_environment())
    if arguments.wait_for_instance:
        wait_for_instance(os.environ, arguments.timeout)
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        sys.exit(f"dagster-platform-entrypoint: {command[0]!r} is not a command in this image")


if __name__ == "__main__":
    main()
