"""Cross-process file locks that are safe on a volume shared by several containers.

`fcntl.flock` locks are honoured by every process that opens the same file on the same
filesystem, whichever container it runs in. Lock files may be deleted by eviction, so after
acquiring we check that the path still names the inode we locked; otherwise a process could
hold a lock on an unlinked file while another locks the new one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WandbArtifactsIOManagerError


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
        deadline = None if timeout is None else time.monotonic() + timeout
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        delay = 0.005
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                if blocking and deadline is None:
                    fcntl.flock(fd, mode)
                else:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if not blocking:
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"Timed out after {timeout}s waiting for the lock {self.path}. Another"
                        " process holds it; if that process died, its lock is released by the"
                        " kernel, so retry. If this persists, check the shared volume supports"
                        " flock."
                    ) from exc
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
