"""Start and stop service processes the way a container engine would.

Each service gets its own session (process group), default SIGINT/SIGTERM handling even when
started from a non-interactive shell (which would otherwise leave them ignored), and a log
file. Stopping signals the whole group (or only the main process of a Celery worker, whose
warm shutdown lets running tasks finish), then kills whatever is left of the process tree, so
a code server's run subprocesses never outlive the stack.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# setpriv: a service gets SIGTERM when the supervisor thread that started it dies, even by
# SIGKILL, so a crashed `make dev` leaves nothing running. coreutils `env` then resets the
# signal dispositions a non-interactive parent shell left ignored.
SERVICE_WRAPPER = [
    "setpriv",
    "--pdeathsig",
    "TERM",
    "--",
    "env",
    "--default-signal=INT,TERM,HUP,QUIT",
]


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    ready: Callable[[], bool]
    stop_signal: int = signal.SIGTERM
    # False: the stop signal goes to the main process only, as `docker stop` sends it to PID 1,
    # so a Celery worker's warm shutdown lets its pool processes finish their tasks.
    signal_group: bool = True
    stop_timeout: float = 20.0
    restart: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0
    started_at: float = 0.0  # monotonic, for backoff
    started_wall: float = 0.0  # wall clock, to compare with file times

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== starting {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*SERVICE_WRAPPER, *self.argv],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.started_wall = time.time()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_ready(self) -> bool:
        if not self.is_running():
            return False
        try:
            return self.ready()
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        tree = _process_tree(self.process.pid)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.signal_group:
                    os.killpg(self.process.pid, self.stop_signal)
                else:
                    os.kill(self.process.pid, self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(self.stop_timeout)
        # Anything left (the group ignored the signal, or a child started its own session)
        # is killed outright.
        _kill_all([*tree, *_process_tree(self.process.pid)])
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _process_tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=5)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
