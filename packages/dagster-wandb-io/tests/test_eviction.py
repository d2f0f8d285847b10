"""Eviction: CLI, Dagster job/schedule; never evicts entries in use or offline-only data."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dagster import ScheduleDefinition

from dagster_wandb_io import evict, make_cache_eviction_job, make_cache_eviction_schedule
from dagster_wandb_io.cache import Layout, SharedCache
from dagster_wandb_io.cli import main
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.locks import FileLock
from dagster_wandb_io.testing import FakeCloud, offline_store, run_spec


def _online_store(base_dir, cloud, ttl=None):
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    return ArtifactStore(
        StoreSettings(
            base_dir=base_dir,
            mode="online",
            entity="my_entity",
            project="my_project",
            host="https://api.wandb.ai",
            ttl_minutes=ttl,
        ),
        cloud,
    )


def test_fresh_entries_kept_expired_evicted_offline_pinned(base_dir):
    cloud = FakeCloud()
    online = _online_store(base_dir, cloud, ttl=60)
    online.write("online value", name="on", config=WriteConfig(), run=run_spec())
    offline = offline_store(base_dir, ttl_minutes=0)
    offline.write("offline value", name="off", config=WriteConfig(), run=run_spec())

    report = evict(base_dir)  # each entry's own TTL: 60 min (fresh) and 0 (but offline)
    assert report.evicted == [] and report.kept_fresh == 1 and report.kept_offline == 1

    report = evict(base_dir, now=time.time() + 61 * 60)
    assert [e.split("@")[0] for e in report.evicted] == ["my_entity/my_project/on"]
    assert report.bytes_freed > 0

    # Online reads fetch it again after eviction.
    assert _online_store(base_dir, cloud).read("on", Selection()) == "online value"
    assert cloud.bytes_downloaded > 0

    report = evict(base_dir, older_than_minutes=0, include_offline=True)
    assert len(report.evicted) == 2


def test_entry_in_use_is_never_evicted(base_dir):
    store = offline_store(base_dir)
    store.write("x", name="held", config=WriteConfig(), run=run_spec())
    (entry,) = SharedCache(Layout(base_dir)).iter_entries()
    with SharedCache(Layout(base_dir)).using(entry):
        report = evict(base_dir, older_than_minutes=0, include_offline=True)
        assert report.kept_in_use and not report.evicted
        assert entry.path.exists()
    report = evict(base_dir, older_than_minutes=0, include_offline=True)
    assert report.evicted and not entry.path.exists()


def test_paths_returned_to_user_code_stay_held_until_close(base_dir, tmp_path):
    import wandb

    store = offline_store(base_dir)
    f = tmp_path / "f.txt"
    f.write_text("data")
    art = wandb.Artifact("withfile", "dataset")
    art.add_file(str(f), name="f.txt")
    store.write(art, name="withfile", config=WriteConfig(), run=run_spec())
    reader = offline_store(base_dir)
    path = reader.read("withfile", Selection(get_path="f.txt"))
    assert evict(base_dir, older_than_minutes=0, include_offline=True).kept_in_use
    assert Path(path).read_text() == "data"
    reader.close()
    assert evict(base_dir, older_than_minutes=0, include_offline=True).evicted


def test_cache_duration_zero_means_evicted_at_next_pass(base_dir):
    cloud = FakeCloud()
    _online_store(base_dir, cloud, ttl=0).write(1, name="z", config=WriteConfig(), run=run_spec())
    assert len(evict(base_dir).evicted) == 1


def test_cli_ls_verify_evict(base_dir, capsys):
    store = offline_store(base_dir)
    res = store.write({"k": 1}, name="clitest", config=WriteConfig(), run=run_spec())
    assert main(["cache", "ls", "--base-dir", str(base_dir)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["name"] == "clitest" and row["status"] == "ok" and row["origin"] == "offline"

    assert main(["cache", "verify", "--base-dir", str(base_dir)]) == 0
    payload = Path(res.cache_path) / "files" / "output.pickle"
    os.chmod(payload, 0o644)
    payload.write_bytes(payload.read_bytes()[:-1] + b"\x00")
    capsys.readouterr()
    assert main(["cache", "verify", "--base-dir", str(base_dir)]) == 1
    assert "does not match" in capsys.readouterr().out

    assert main(["cache", "evict", "--base-dir", str(base_dir), "--digest", res.digest]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kept_offline"] == 1
    assert (
        main(
            [
                "cache",
                "evict",
                "--base-dir",
                str(base_dir),
                "--digest",
                res.digest,
                "--include-offline",
            ]
        )
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["evicted"]) == 1


def test_console_script_is_installed(base_dir):
    script = Path(sys.executable).parent / "dagster-wandb-io"
    assert script.exists()
    out = subprocess.run(
        [str(script), "cache", "evict", "--base-dir", str(base_dir), "--older-than-minutes", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["evicted"] == []


def test_eviction_job_and_schedule(base_dir):
    _online_store(base_dir, FakeCloud(), ttl=0).write(
        1, name="j", config=WriteConfig(), run=run_spec()
    )
    job = make_cache_eviction_job()
    result = job.execute_in_process(
        run_config={
            "ops": {"dagster_wandb_io_cache_eviction_op": {"config": {"base_dir": str(base_dir)}}}
        }
    )
    assert result.success
    report = result.output_for_node("dagster_wandb_io_cache_eviction_op")
    assert len(report["evicted"]) == 1
    schedule = make_cache_eviction_schedule(cron_schedule="0 * * * *")
    assert isinstance(schedule, ScheduleDefinition) and schedule.cron_schedule == "0 * * * *"


def test_synced_offline_staging_is_cleaned(base_dir):
    store = offline_store(base_dir)
    store.write("s", name="synced", config=WriteConfig(), run=run_spec())
    staging = list((base_dir / "dagster_wandb_io/wandb/staging").iterdir())
    assert len(staging) == 1
    assert evict(base_dir).staging_removed == 0
    run_dir = Path(json.loads((staging[0] / ".offline_run.json").read_text())["run_dir"])
    wandb_file = next(run_dir.glob("*.wandb"))
    Path(str(wandb_file) + ".synced").write_text("")  # what `wandb sync` leaves behind
    assert evict(base_dir).staging_removed == 1


def test_stale_lock_file_deleted_by_eviction_is_detected(base_dir):
    path = base_dir / "x.lock"
    a = FileLock(path)
    a.acquire()
    b = FileLock(path, shared=True)
    assert not b.acquire(blocking=False)
    path.unlink()  # eviction removes the lock file while holding it
    a.release()
    assert b.acquire(blocking=False)  # locks the new inode, not the unlinked one
    b.release()


def test_an_entry_whose_index_write_is_pending_is_not_evicted(base_dir, monkeypatch):
    """Before the fix, an eviction pass between a write's cache commit and its index write
    removed the entry; the write reported success and every read then failed."""
    from dagster_wandb_io.index import OfflineIndex

    record = OfflineIndex.record
    passes = []

    def evict_first(self, *args, **kwargs):
        passes.append(evict(base_dir, older_than_minutes=0, include_offline=True))
        return record(self, *args, **kwargs)

    monkeypatch.setattr(OfflineIndex, "record", evict_first)
    store = offline_store(base_dir, ttl_minutes=0)
    store.write({"kept": True}, name="pending", config=WriteConfig(), run=run_spec())
    assert passes[0].kept_in_use and not passes[0].evicted
    assert offline_store(base_dir).read("pending", Selection()) == {"kept": True}
