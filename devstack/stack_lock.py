"""One supervisor per state folder, and cleaning up after one that is gone.

The supervisor (`make dev`, or a test's LocalStack) holds an exclusive ``flock`` on
``.devstack/<name>.lock`` for as long as it runs; the kernel releases it when the process
exits, however it exits. So a second `make dev` on the same folder is told at once that a
stack runs there, and `make dev-stop` can stop a stack whose terminal is gone.

The lock lives beside the state folder, not in it, because ``--fresh`` deletes the folder.
"""

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

STOP_COMMAND = "make dev-stop"


class StackRunning(RuntimeError):
    """Another supervisor holds this state folder; the message says where and how to stop it."""


@dataclass
class LockHolder:
    pid: int
    state: Path

    def describe(self) -> str:
        status = read_status(self.state)
        if status:
            where = f"Dagster UI {status['webserver']}"
            if status.get("flower"):
                where += f", Flower {status['flower']}"
        else:
            where = "still starting"
        return (
            f"A local stack is already running in {self.state} (supervisor pid {self.pid}; "
            f"{where}). Use it, or stop it with `{STOP_COMMAND}` (Ctrl-C in its terminal works "
            "too) and start again."
        )


def lock_path(state: Path) -> Path:
    return state.parent / f"{state.name}.lock"


def read_status(state: Path) -> dict | None:
    try:
        return json.loads((state / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class SupervisorLock:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = lock_path(state)
        self._file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = LockHolder(int(handle.read().strip() or 0), self.state)
            handle.close()
            raise StackRunning(holder.describe()) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def holder(state: Path) -> LockHolder | None:
    """The supervisor holding ``state``, or None when no process does."""
    path = lock_path(state)
    if not path.exists():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockHolder(int(handle.read().strip() or 0), state)
    return None


def leftover_processes(state: Path) -> list[psutil.Process]:
    """Service processes a dead supervisor left behind: status.json's process groups whose
    leaders still run with the start time recorded there (so a reused pid is never killed)."""
    status = read_status(state) or {}
    leftovers = []
    for record in (status.get("processes") or {}).values():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process = psutil.Process(record["pid"])
            if abs(process.create_time() - record["started"]) < 1.0:
                leftovers.append(process)
    return leftovers


def kill_leftovers(state: Path) -> int:
    leaders = leftover_processes(state)
    doomed = []
    for leader in leaders:
        with contextlib.suppress(psutil.NoSuchProcess):
            doomed.extend([leader, *leader.children(recursive=True)])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader.pid, signal.SIGKILL)
    for process in doomed:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(doomed, timeout=10)
    return len(leaders)


def stop_stack(state: Path, timeout: float = 90.0) -> str:
    """What `make dev-stop` does: stop the supervisor (it stops its services), or clean up
    what a dead one left behind."""
    running = holder(state)
    if running is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while holder(state) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if holder(state) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGKILL)
            time.sleep(0.5)
    killed = kill_leftovers(state)
    if running is not None:
        return f"Stopped the local stack in {state} (supervisor pid {running.pid})."
    if killed:
        return f"No supervisor was running in {state}; killed {killed} leftover service(s)."
    return f"No local stack is running in {state}."
