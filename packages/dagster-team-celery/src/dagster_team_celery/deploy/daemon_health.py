"""``dagster-daemon-healthcheck``: is the Dagster daemon live? Answered as ``dagster-daemon
liveness-check`` answers it, from the daemon's heartbeats in the instance's database, without
importing Dagster: that command's start-up is about 2 s of CPU (20 s of waiting on busy cores),
and compose asks every 15 s. This reads one table with psycopg2 (about 0.05 s).

Stricter than ``liveness-check`` in one way: a heartbeat counts only if it is newer than the
daemon process asked about (``--since``, or the oldest ``dagster-daemon run`` on this host), so
a restarted daemon is not reported live on its predecessor's heartbeats.
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

# As ``dagster-daemon liveness-check``: DAGSTER_DAEMON_HEARTBEAT_TOLERANCE, else 1800 s.
TOLERANCE_ENV = "DAGSTER_DAEMON_HEARTBEAT_TOLERANCE"
DEFAULT_TOLERANCE_SECONDS = 1800


def connection_from_environment() -> dict[str, str]:
    """The instance database as dagster.yaml names it, from DAGSTER_POSTGRES_*."""
    names = {"host": "HOST", "port": "PORT", "user": "USER", "password": "PASSWORD"}
    parts = {key: os.environ[f"DAGSTER_POSTGRES_{name}"] for key, name in names.items()}
    return {**parts, "dbname": os.environ["DAGSTER_POSTGRES_DB"]}


def heartbeats_since(connection: dict[str, str], since: float) -> int:
    """How many of the daemon's loops (one row each) have beaten since ``since`` (epoch s)."""
    import psycopg2

    # Dagster stores a heartbeat's time as a naive UTC timestamp.
    after = datetime.datetime.fromtimestamp(since, datetime.UTC).replace(tzinfo=None)
    with psycopg2.connect(connect_timeout=5, **connection) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM daemon_heartbeats WHERE timestamp >= %s", (after,))
        return int(cursor.fetchone()[0])


def daemon_started_at(proc: Path = Path("/proc")) -> float | None:
    """When the oldest ``dagster-daemon run`` on this host (this container) started, in epoch
    seconds, if one runs. From /proc: the images carry no psutil."""
    boot = next(
        float(line.split()[1])
        for line in (proc / "stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    ticks = os.sysconf("SC_CLK_TCK")
    started = []
    for folder in proc.iterdir():
        if not folder.name.isdigit():
            continue
        try:
            argv = (folder / "cmdline").read_bytes().split(b"\0")
            stat = (folder / "stat").read_text()
        except OSError:
            continue  # gone since the listing
        if any(arg.endswith(b"dagster-daemon") for arg in argv) and b"run" in argv:
            # Field 22 (starttime), counted after the parenthesised command name.
            started.append(boot + int(stat.rsplit(")", 1)[1].split()[19]) / ticks)
    return min(started) if started else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-daemon-healthcheck", description=__doc__)
    parser.add_argument("--since", type=float, help="count heartbeats after this (epoch s)")
    args = parser.parse_args(argv)
    tolerance = float(os.environ.get(TOLERANCE_ENV) or DEFAULT_TOLERANCE_SECONDS)
    started = args.since if args.since is not None else daemon_started_at()
    if started is None:
        print("daemon: no `dagster-daemon run` process on this host")
        return 1
    since = max(started, time.time() - tolerance)
    beats = heartbeats_since(connection_from_environment(), since)
    print(f"daemon: {beats} loop(s) beat since {time.time() - since:.0f}s ago")
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
