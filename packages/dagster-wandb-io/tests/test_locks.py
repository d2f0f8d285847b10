"""Waits on the shared volume's locks are bounded and logged.

Before the fix, a writer of an entry that another process held waited without a timeout or a
log line (25 s was observed, and nothing bounded it)."""

import logging
import subprocess
import sys
import time

import pytest

from dagster_wandb_io import locks
from dagster_wandb_io.locks import LOCK_TIMEOUT_ENV, FileLock, LockTimeout

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held_lock(tmp_path):
    path = tmp_path / "entry.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held"
    yield path
    holder.kill()
    holder.wait()


def test_a_wait_for_a_held_lock_is_logged_and_gives_up_with_the_fix(held_lock, monkeypatch, caplog):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "1.5")
    monkeypatch.setattr(locks, "LOG_AFTER_SECONDS", 0.3)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dagster_wandb_io.locks"):
        with pytest.raises(LockTimeout, match=LOCK_TIMEOUT_ENV):
            FileLock(held_lock).acquire()
    assert time.monotonic() - started < 30, "the wait is bounded by the configured timeout"
    assert any(
        "Waiting" in record.message and str(held_lock) in record.message
        for record in caplog.records
    )


def test_the_lock_is_taken_once_its_holder_is_gone(tmp_path):
    path = tmp_path / "entry.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held"
    holder.kill()  # the kernel drops a dead process's flock
    holder.wait()
    lock = FileLock(path)
    assert lock.acquire(timeout=10)
    lock.release()
