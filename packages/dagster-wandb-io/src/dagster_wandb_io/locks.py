"""Cross-process file locks that are safe on a volume shared by several containers.

`fcntl.flock` locks are honoured by every process that opens the same file on the same
filesystem, whichever container it runs in. Lock files may be deleted by eviction, so after
acquiring we check that the path still names the inode we locked; otherwise a process could
hold a lock on an unlinked file while another locks the new one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WandbArtifactsIOManagerError

LOCK_TIMEOUT_ENV = "DAGSTER_WANDB_IO_LOCK_TIMEOUT_SECONDS"
# Every wait is bounded: a lock is held for milliseconds to seconds (a commit, an index write, a
# W&B log), so ten minutes means its holder is stuck, not slow.
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0
# A wait longer than this is logged, and again every LOG_EVERY_SECONDS.
LOG_AFTER_SECONDS = 5.0
LOG_EVERY_SECONDS = 30.0

logger = logging.getLogger("dagster_wandb_io.locks")


def default_timeout() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    try:
        return float(raw) if raw else DEFAULT_LOCK_TIMEOUT_SECONDS
    except ValueError:
        raise WandbArtifactsIOManagerError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds."
        ) from None


class LockTimeout(WandbArtifactsIOManagerError):
    """A lock could not be acquired in time."""


class FileLock:
    """A shared or exclusive `flock` on `path`, re-validated against deletion."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = True, timeout: float | None = None) -> bool:
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        if timeout is None:
            timeout = default_timeout()
        started = time.monotonic()
        deadline = started + timeout
        next_log = started + LOG_AFTER_SECONDS
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        delay = 0.005
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if not blocking:
                    return False
                now = time.monotonic()
                if now >= deadline:
                    raise LockTimeout(
                        f"Timed out after {timeout:.0f}s waiting for the lock {self.path}. Another"
                        " process holds it; if that process died, its lock is released by the"
                        " kernel, so retry. If this persists, check the shared volume supports"
                        f" flock, or raise {LOCK_TIMEOUT_ENV}."
                    ) from exc
                if now >= next_log:
                    logger.warning(
                        "Waiting %.0fs so far for the lock %s, held by another process"
                        " (gives up after %.0fs).",
                        now - started,
                        self.path,
                        timeout,
                    )
                    next_log = now + LOG_EVERY_SECONDS
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            if _same_file(fd, self.path):
                self._fd = fd
                return True
            # The lock file was unlinked (evicted) between open and flock: retry on the new one.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


@contextmanager
def locked(path: Path, *, shared: bool = False, timeout: float | None = None) -> Iterator[FileLock]:
    lock = FileLock(path, shared=shared)
    lock.acquire(timeout=timeout)
    try:
        yield lock
    finally:
        lock.release()
