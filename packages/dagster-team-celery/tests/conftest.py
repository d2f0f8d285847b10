import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway password-protected Redis on a free loopback port, which tests may restart."""

    def __init__(self, server: str, data_dir: Path) -> None:
        self.server = server
        self.data_dir = data_dir
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
                "--requirepass",
                "pw",
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


@pytest.fixture
def redis_server(tmp_path) -> RedisServer:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    instance = RedisServer(server, tmp_path)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def team(tmp_path, redis_url):
    """A team on the throwaway Redis: its code written, a worker started by the test."""
    from celery_team import CeleryTeam

    celery_team = CeleryTeam(tmp_path, redis_url)
    celery_team.write_code()
    yield celery_team
    celery_team.cleanup()
