"""A team's step worker and warm run worker, forked from one parent that has imported Dagster,
Celery and the team's code once (``dagster-team-worker``).

Started apart, each worker holds its own copy of those imports. Forked from one preloaded
parent, they share it copy-on-write, as a prefork pool's processes share their worker's: the
bakery's two workers took 427 MiB started apart and 321 MiB forked (idle PSS, 2026-12-06).

The parent never runs Celery; it supervises its workers:

- **Stop** (SIGTERM from ``docker stop`` or the devstack) drains the run worker first, while
  the step worker still serves the steps of the runs in flight, and then gives the step worker
  its warm shutdown. A second signal, or SIGQUIT, goes to every worker at once (Celery's cold
  shutdown).
- **A worker that dies** is forked again from the parent, which holds the imports and nothing
  else. One that keeps dying right after its start stops the whole service instead, so the
  restart policy and the health check show it.
- **As a container's PID 1** it also reaps orphans: the process of a run whose worker was
  killed outright.
"""

import contextlib
import ctypes
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from typing import NoReturn

from celery.bin.celery import celery as celery_cli

from dagster_team_celery.workers.liveness import LIVENESS_FILE_ENV, role_liveness_path
from dagster_team_celery.workers.worker_roles import WorkerRole

# Drained first: a run in flight still needs the step worker for the rest of its steps.
SHUTDOWN_ORDER = ("runs", "steps")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# A worker that exits sooner than this after its start is failing to start, not crashing.
QUICK_EXIT_SECONDS = 10.0
QUICK_EXITS_BEFORE_GIVING_UP = 3
PR_SET_PDEATHSIG = 1

logger = logging.getLogger(__name__)


class WorkerFamily:
    def __init__(self, team: str, roles: list[WorkerRole]) -> None:
        self.team = team
        self.roles = roles
        self.workers: dict[int, WorkerRole] = {}
        self.started_at: dict[str, float] = {}
        self.quick_exits: dict[str, int] = {}
        self.stop_signal: int | None = None
        self.signalled: set[int] = set()
        self.exit_code = 0

    def run(self) -> int:
        log_to_stderr()
        for role in self.roles:
            # Imports the team's code (worker_startup.py): a team whose code is broken stops
            # here, before any worker exists to take a task.
            importlib.import_module(role.app_module)
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, self.on_stop_signal)
        for role in self.roles:
            if self.stop_signal is None:  # a stop that came first leaves nothing to start
                self.fork(role)
        return self.supervise()

    def fork(self, role: WorkerRole) -> None:
        # Blocked across the fork, so the child never runs the parent's handler (which would
        # signal its siblings) before it restores the default ones.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        parent = os.getpid()
        try:
            pid = os.fork()
            if pid == 0:
                self.become(role, parent)
            self.workers[pid] = role
            self.started_at[role.name] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        logger.info("Forked the team's %s worker (pid %d).", role.name, pid)

    def become(self, role: WorkerRole, parent: int) -> NoReturn:
        """Run ``celery worker`` for ``role`` in this forked child; never return."""
        code = 1
        try:
            for stop_signal in STOP_SIGNALS:
                signal.signal(stop_signal, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            die_with_parent(parent)
            os.environ[LIVENESS_FILE_ENV] = str(role_liveness_path(role.name))
            for name, value in role.environment.items():
                os.environ.setdefault(name, value)
            app = importlib.import_module(role.app_module).app
            # Both apps were made in the parent; the last one made is Celery's current app.
            app.set_current()
            # Both workers write to the service's one log: each line says whose it is.
            app.conf.worker_log_format = (
                f"[%(asctime)s: %(levelname)s/{role.name}/%(processName)s] %(message)s"
            )
            app.conf.worker_task_log_format = (
                f"[%(asctime)s: %(levelname)s/{role.name}/%(processName)s] "
                "%(task_name)s[%(task_id)s]: %(message)s"
            )
            celery_cli.main(
                args=role.celery_args(self.team), prog_name="celery", auto_envvar_prefix="CELERY"
            )
            code = 0
        except SystemExit as exited:
            code = exited.code if isinstance(exited.code, int) else int(exited.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def on_stop_signal(self, signum: int, _frame: object) -> None:
        if self.stop_signal is None and signum != signal.SIGQUIT:
            self.stop_signal = signum
            logger.info("Stopping: the run worker drains first, then the step worker.")
            self.stop_next()
            return
        self.stop_signal = signum
        for pid in list(self.workers):
            signal_worker(pid, signum)

    def stop_next(self) -> None:
        """Signal the workers of the first role in shutdown order that still has any."""
        assert self.stop_signal is not None
        for name in SHUTDOWN_ORDER:
            pids = [pid for pid, role in self.workers.items() if role.name == name]
            if pids:
                for pid in set(pids) - self.signalled:
                    signal_worker(pid, self.stop_signal)
                    self.signalled.add(pid)
                return

    def supervise(self) -> int:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            role = self.workers.pop(pid, None)
            if role is None:
                continue  # an orphan this process adopted as PID 1
            if self.stop_signal is not None:
                self.stop_next()
            else:
                self.replace(role, describe_exit(os.waitstatus_to_exitcode(status)))
        return self.exit_code

    def replace(self, role: WorkerRole, how: str) -> None:
        quick = time.monotonic() - self.started_at[role.name] < QUICK_EXIT_SECONDS
        self.quick_exits[role.name] = self.quick_exits.get(role.name, 0) + 1 if quick else 0
        if self.quick_exits[role.name] >= QUICK_EXITS_BEFORE_GIVING_UP:
            logger.error(
                "The team's %s worker %s within %.0f s of its start %d times in a row; stopping "
                "all of the team's workers here. Its log above says why.",
                role.name,
                how,
                QUICK_EXIT_SECONDS,
                self.quick_exits[role.name],
            )
            self.exit_code = 1
            self.stop_signal = signal.SIGTERM
            self.stop_next()
            return
        logger.warning(
            "The team's %s worker %s; forking a new one from the preloaded parent.", role.name, how
        )
        self.fork(role)


def log_to_stderr() -> None:
    """The parent's own lines, in the format of its workers' (not the root logger's: the
    libraries the parent imports log their setup at INFO)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/WorkerFamily] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def signal_worker(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def die_with_parent(parent: int) -> None:
    """A worker whose parent is killed outright gets a warm shutdown instead of an orphan's
    life: on Linux, the kernel sends it SIGTERM."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the kernel was told
        os.kill(os.getpid(), signal.SIGTERM)
