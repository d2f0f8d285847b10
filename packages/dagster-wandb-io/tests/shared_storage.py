"""A throwaway Postgres and SeaweedFS S3 server, what several hosts share in a deployment: the
offline index (Postgres) and the store of record (S3). Both run from local binaries on loopback
ports, with credentials, and tests may restart the store."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

POSTGRES_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]
BUCKET = "artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bin(name: str) -> str:
    for folder in POSTGRES_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql-15)")
    return found


class PostgresServer:
    def __init__(self) -> None:
        # Its own folder under /tmp, which the postgres user can reach (pytest's is root-only).
        self.folder = Path(tempfile.mkdtemp(prefix="dwio-postgres-"))
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.url = f"postgresql://wandb:{self.password}@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen | None = None
        # initdb and postgres refuse to run as root.
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True)
        password_file = self.folder / "password"
        password_file.write_text(self.password)
        if self.run_as:
            for path in (self.folder, data, password_file):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(
            [
                *self.run_as,
                _postgres_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "wandb",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [
                *self.run_as,
                _postgres_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.folder}",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own group: runuser passes no signal on, so stop() signals the group.
            start_new_session=True,
        )
        import psycopg2

        for _ in range(200):
            try:
                psycopg2.connect(self.url, connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("the throwaway Postgres did not start")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(30)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class SeaweedServer:
    """SeaweedFS (`weed server -s3`) with one identity, restartable on the same ports and data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.url = f"http://127.0.0.1:{self.ports['s3']}"
        self.credentials = {
            "AWS_ACCESS_KEY_ID": secrets.token_hex(8),
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
        }
        self.process: subprocess.Popen | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What a client process needs to reach this store."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": "us-east-1",
            **self.credentials,
        }

    def start(self, *, create_bucket: bool = True) -> None:
        """Start on this server's ports; a first start that fails (a port taken by another
        test's process between `free_port` and the bind) retries on fresh ports."""
        first_start = not (self.folder / "data").exists()
        for attempt in range(3 if first_start else 1):
            if attempt:
                self.ports = {name: free_port() for name in self.ports}
                self.grpc = {name: free_port() for name in self.grpc}
                self.url = f"http://127.0.0.1:{self.ports['s3']}"
            if self._launch_and_wait():
                break
        else:
            raise RuntimeError(f"SeaweedFS did not start:\n{self._log_tail()}")
        if create_bucket:
            self.wait_for_bucket()

    def _launch_and_wait(self) -> bool:
        weed = Path(sys.prefix) / "bin" / "weed"
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(weed),
                "-logtostderr=true",
                "server",
                f"-dir={self.folder / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={self.ports['master']}",
                f"-master.port.grpc={self.grpc['master']}",
                f"-volume.port={self.ports['volume']}",
                f"-volume.port.grpc={self.grpc['volume']}",
                f"-filer.port={self.ports['filer']}",
                f"-filer.port.grpc={self.grpc['filer']}",
                "-s3",
                f"-s3.port={self.ports['s3']}",
                f"-s3.port.grpc={self.grpc['s3']}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=256",
                "-volume.max=0",
            ],
            env={**os.environ, **self.credentials},
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "weed.log", "ab"),  # noqa: SIM115 - the server's life
        )
        # Generous: two lanes of suites share two cores in CI.
        deadline = time.monotonic() + 120
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return True
            except OSError:
                time.sleep(0.2)
        self.stop()
        return False

    def _log_tail(self, lines: int = 30) -> str:
        log = (self.folder / "weed.log").read_text(errors="replace").splitlines()
        return "\n".join(log[-lines:])

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def wait_for_bucket(self) -> None:
        """The S3 gateway answers before the filer behind it is ready: retry until the bucket
        exists and takes a write."""
        s3 = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                try:
                    s3.head_bucket(Bucket=BUCKET)
                except Exception:
                    s3.create_bucket(Bucket=BUCKET)
                s3.put_object(Bucket=BUCKET, Key=".ready", Body=b"")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def objects(self, prefix: str = "") -> dict[str, int]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}
