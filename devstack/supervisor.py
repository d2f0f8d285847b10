"""Starting, watching and stopping a stack's services, as compose does for its containers:
each batch started together and waited on until healthy, a crashed service restarted
(`restart: unless-stopped`), and on stop the dependents first, Redis and Postgres last."""

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from devstack.errors import StackError
from devstack.processes import Service, wait_until

INFRASTRUCTURE = ("redis", "postgres")  # stopped last, in this order
# A service that keeps crashing is restarted at most this often.
MIN_RESTART_INTERVAL_SECONDS = 2.0
# While a batch starts, how often the services still starting are named.
PROGRESS_SECONDS = 10.0


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


class Supervisor:
    def __init__(
        self, logs: Path, cwd: Path, restart: bool, on_restart: Callable[[], None]
    ) -> None:
        self.logs = logs  # one <service>.log each
        self.cwd = cwd  # where services run unless told otherwise
        self.restart = restart  # whether crashed services come back, unless told otherwise
        self.on_restart = on_restart  # called after each restart of a crashed service
        # Told each service that becomes ready and, every PROGRESS_SECONDS, those still starting.
        self.progress: Callable[[str], None] = lambda _message: None
        self.services: dict[str, Service] = {}
        # Per service: seconds from its batch's start until it was healthy.
        self.ready_seconds: dict[str, float] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    def add(self, name: str, argv: list, env: dict[str, str], ready, **kwargs) -> Service:
        service = Service(
            name=name,
            argv=[str(part) for part in argv],
            env=env,
            cwd=kwargs.pop("cwd", self.cwd),
            log_path=self.logs / f"{name}.log",
            ready=ready,
            restart=kwargs.pop("restart", self.restart),
            **kwargs,
        )
        self.services[name] = service
        return service

    def start_and_wait(self, services: list[Service], timeout: float) -> None:
        for service in services:
            service.start()
        pending = list(services)
        began = last_said = time.monotonic()
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
                    self.progress(f"  ready    {service.name} ({time.monotonic() - began:.1f}s)")
            if pending and time.monotonic() - last_said >= PROGRESS_SECONDS:
                last_said = time.monotonic()
                names = ", ".join(service.name for service in pending)
                self.progress(f"  starting {names} ({last_said - began:.0f}s so far)")
            time.sleep(0.1)
        if pending:
            names = ", ".join(service.name for service in pending)
            tails = "\n".join(f"--- {s.name} ({s.log_path}):\n{s.log_tail()}" for s in pending)
            raise StackError(f"Not healthy after {timeout:.0f}s: {names}\n{tails}")

    def watch(self) -> None:
        """From now on, restart services that die."""
        self._monitor = threading.Thread(target=self._supervise, name="devstack-supervisor")
        self._monitor.daemon = True
        self._monitor.start()

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
                    self.on_restart()

    def process_records(self) -> dict[str, dict]:
        """Each running service's pid with its start time, so `make dev-stop` never kills a
        process that reused a pid."""
        return {
            name: {"pid": service.pid, "started": process_start_time(service.pid)}
            for name, service in self.services.items()
            if service.pid is not None
        }

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

    def restart_service(self, name: str, timeout: float = 60.0) -> None:
        service = self.services[name]
        service.stop()
        service.start()
        if not wait_until(service.is_ready, timeout):
            raise StackError(f"{name} did not become healthy again:\n{service.log_tail()}")
