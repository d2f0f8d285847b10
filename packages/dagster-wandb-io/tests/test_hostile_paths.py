"""`add_files`, `add_dirs` and file:// references read only where a step may read; files
another team put in the shared volume's place are bounded.

Before the fix, `add_files` copied `/etc/passwd` into the cache every team reads, and `add_dirs`
followed a symlink out of its directory; an entry.json linked to /dev/zero was read until a
MemoryError, and one replaced by a FIFO hung the read.
"""

import os
import queue
import tempfile
import threading
from pathlib import Path

import pytest

from dagster_wandb_io import CacheCorruptionError, ConfigurationError
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.sources import READABLE_ROOTS_ENV
from dagster_wandb_io.testing import offline_store, run_spec


def write(base_dir: Path, **extras):
    config = WriteConfig(**extras)
    return offline_store(base_dir).write([1], name="with-files", config=config, run=run_spec())


def cached_passwd(base_dir: Path) -> list[Path]:
    return [p for p in base_dir.rglob("*") if p.is_file() and b"root:" in p.read_bytes()[:4096]]


def test_a_file_outside_the_readable_roots_is_refused(base_dir):
    with pytest.raises(ConfigurationError, match=r"'/etc/passwd' resolves to /etc/passwd, outside"):
        write(base_dir, add_files=[{"local_path": "/etc/passwd"}])
    assert not cached_passwd(base_dir)


def test_a_symlink_in_the_working_directory_to_outside_is_refused(base_dir, tmp_path):
    (tmp_path / "innocent.txt").symlink_to("/etc/passwd")
    with pytest.raises(ConfigurationError, match="outside the folders a step may add"):
        write(base_dir, add_files=[{"local_path": "innocent.txt"}])
    assert not cached_passwd(base_dir)


def test_a_directory_holding_a_symlink_out_of_it_is_refused(base_dir, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "rows.csv").write_text("a,b\n")
    (folder / "secrets").symlink_to("/etc")
    with pytest.raises(ConfigurationError, match="is a symlink to /etc, outside that directory"):
        write(base_dir, add_dirs=[{"local_path": str(folder)}])
    assert not cached_passwd(base_dir)


def test_a_file_reference_outside_the_roots_is_refused(base_dir):
    with pytest.raises(ConfigurationError, match="`add_references` file"):
        write(base_dir, add_references=[{"uri": "file:///etc/passwd", "checksum": True}])


def test_files_under_the_working_directory_or_a_listed_root_are_added(
    base_dir, tmp_path, monkeypatch
):
    workdir, scratch, elsewhere = (tmp_path / n for n in ("workdir", "scratch", "elsewhere"))
    for folder in (workdir, scratch, elsewhere):
        folder.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (workdir / "data.json").write_text("{}")
    dataset = workdir / "dataset"
    dataset.mkdir()
    (dataset / "rows.csv").write_text("a,b\n")
    (dataset / "link.csv").symlink_to(dataset / "rows.csv")  # stays inside: fine
    (elsewhere / "model.bin").write_bytes(b"\0" * 8)
    extras = {
        "add_files": [{"local_path": "data.json"}, {"local_path": str(elsewhere / "model.bin")}],
        "add_dirs": [{"local_path": "dataset", "name": "dataset"}],
    }
    with pytest.raises(ConfigurationError, match=READABLE_ROOTS_ENV):
        write(base_dir, **extras)
    monkeypatch.setenv(READABLE_ROOTS_ENV, str(elsewhere))
    write(base_dir, **extras)
    loaded = offline_store(base_dir).read("with-files", Selection(get_path="model.bin"))
    assert Path(loaded).read_bytes() == b"\0" * 8


def replace_with(path: Path, replacement: str) -> None:
    path.unlink()
    if replacement == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif replacement == "FIFO":
        os.mkfifo(path)
    else:  # sparse: 65 MiB long, no bytes written
        with open(path, "wb") as f:
            f.truncate(65 << 20)


@pytest.mark.parametrize("replacement", ["link to /dev/zero", "FIFO", "65 MiB file"])
def test_a_manifest_replaced_by_an_unbounded_file_is_refused_at_once(base_dir, replacement):
    result = offline_store(base_dir).write(
        {"a": 1}, name="bounded", config=WriteConfig(), run=run_spec()
    )
    replace_with(Path(result.cache_path) / "entry.json", replacement)
    outcome: queue.Queue[BaseException | object] = queue.Queue()

    def read() -> None:
        try:
            outcome.put(offline_store(base_dir).read("bounded", Selection()))
        except BaseException as error:
            outcome.put(error)

    # A thread, so a read that hangs (the FIFO, before the fix) fails the test instead.
    threading.Thread(target=read, daemon=True).start()
    try:
        error = outcome.get(timeout=60)
    except queue.Empty:
        pytest.fail(f"a read of a manifest replaced by a {replacement} hung")
    assert isinstance(error, CacheCorruptionError), error
    assert "not a regular file" in str(error) or "over 64 MiB" in str(error)
