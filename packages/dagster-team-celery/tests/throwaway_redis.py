"""A throwaway password-protected Redis for the tests, on a free loopback port. A module of its
own (not conftest) so that tests can import it when both packages' tests run together, where
``conftest`` names the other package's."""

import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway password-protected Redis on a free loopback port, which tests may restart."""

    def __init__(self, server: str, data_dir: Path, acl_file: Path | None = None) -> None:
        """With ``acl_file``, its ``default`` user must have the password ``pw``."""
        self.server = server
        self.data_dir = data_dir
        self.acl_file = acl_file
        self.port = free_port()
        self.url = f"redis://:pw@127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *(["--aclfile", str(self.acl_file)] if self.acl_file else ["--requirepass", "pw"]),
                "--save",
                "",
                "--dir",
                str(self.data_dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
