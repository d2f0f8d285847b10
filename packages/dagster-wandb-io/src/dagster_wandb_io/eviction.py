"""Cache eviction: a separate step (CLI, Dagster job, schedule), never inside IO calls.

An entry is evicted when it has not been used for longer than its TTL (the
`cache_duration_in_minutes` recorded at its last use, or `--older-than-minutes`), and only if
nobody holds it: eviction takes the entry's lock exclusively *without waiting*, and readers hold
it shared for as long as they use the entry. Entries written offline are the only local copy
until their runs are synced, so they are kept unless `include_offline` is set.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import CacheEntry, Layout, SharedCache, resolve_base_dir
from .errors import CacheCorruptionError
from .fsutil import read_json, remove_tree
from .locks import FileLock

# Staging dirs and tmp dirs younger than this are left alone (their writer may be mid-way).
_TMP_GRACE_SECONDS = 3600


@dataclass
class EvictionReport:
    evicted: list[str] = field(default_factory=list)
    kept_in_use: list[str] = field(default_factory=list)
    kept_fresh: int = 0
    kept_offline: int = 0
    bytes_freed: int = 0
    tmp_removed: int = 0
    staging_removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "evicted": self.evicted,
            "kept_in_use": self.kept_in_use,
            "kept_fresh": self.kept_fresh,
            "kept_offline": self.kept_offline,
            "bytes_freed": self.bytes_freed,
            "tmp_removed": self.tmp_removed,
            "staging_removed": self.staging_removed,
        }


def _size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def _expired(entry: CacheEntry, older_than_minutes: float | None, now: float) -> bool:
    last_used, ttl = entry.last_used()
    limit = ttl if older_than_minutes is None else older_than_minutes
    return now - last_used >= limit * 60


def evict(
    base_dir: str | Path,
    *,
    older_than_minutes: float | None = None,
    include_offline: bool = False,
    digest: str | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> EvictionReport:
    layout = Layout(Path(base_dir))
    cache = SharedCache(layout)
    report = EvictionReport()
    fixed_now = now
    now = time.time() if now is None else now
    for entry in cache.iter_entries():
        if digest is not None and entry.digest != digest:
            continue
        label = f"{entry.entity}/{entry.project}/{entry.name}@{entry.digest}"
        if digest is None and not _expired(entry, older_than_minutes, now):
            report.kept_fresh += 1
            continue
        lock = FileLock(entry.lock_path)
        if not lock.acquire(blocking=False):
            report.kept_in_use.append(label)
            continue
        try:
            # Re-check under the lock: a reader may have used it since we looked.
            recheck = fixed_now if fixed_now is not None else time.time()
            if digest is None and not _expired(entry, older_than_minutes, recheck):
                report.kept_fresh += 1
                continue
            origin = None
            try:
                manifest = entry.read_manifest()
                origin = manifest.origin if manifest else None
            except CacheCorruptionError:
                origin = None
            if origin == "offline" and not include_offline:
                report.kept_offline += 1
                continue
            size = _size(entry.path)
            if not dry_run:
                remove_tree(entry.path)
                entry.fill_lock_path.unlink(missing_ok=True)
                # Unlinking while holding it is safe: lockers re-check the inode.
                entry.lock_path.unlink(missing_ok=True)
            report.evicted.append(label)
            report.bytes_freed += size
        finally:
            lock.release()
    if not dry_run:
        report.tmp_removed = _clean_tmp(layout, now)
        report.staging_removed = _clean_synced_staging(layout, now)
    return report


def _clean_tmp(layout: Layout, now: float) -> int:
    removed = 0
    if not layout.tmp_dir.is_dir():
        return 0
    for d in layout.tmp_dir.iterdir():
        if not d.is_dir() or d.name.startswith("."):
            continue
        lock = FileLock(d.with_name(d.name + ".lock"))
        if not lock.acquire(blocking=False):
            continue
        try:
            if now - d.stat().st_mtime < _TMP_GRACE_SECONDS:
                continue
            remove_tree(d)
            lock.path.unlink(missing_ok=True)
            removed += 1
        except FileNotFoundError:
            continue
        finally:
            lock.release()
    return removed


def _clean_synced_staging(layout: Layout, now: float) -> int:
    """Offline runs keep their artifact files in staging until `wandb sync` uploaded them."""
    removed = 0
    if not layout.wandb_staging_dir.is_dir():
        return 0
    for d in layout.wandb_staging_dir.iterdir():
        marker = d / ".offline_run.json"
        try:
            run_dir = Path(read_json(marker)["run_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            # No marker: an online upload that died, or a write still in progress.
            try:
                if now - d.stat().st_mtime > 24 * _TMP_GRACE_SECONDS:
                    remove_tree(d)
                    removed += 1
            except FileNotFoundError:
                pass
            continue
        if any(run_dir.glob("*.wandb.synced")):
            remove_tree(d)
            removed += 1
    return removed


def make_cache_eviction_job(
    *,
    name: str = "dagster_wandb_io_cache_eviction",
    base_dir: str | None = None,
    older_than_minutes: float | None = None,
    include_offline: bool = False,
) -> Any:
    """A Dagster job that evicts expired entries from the shared W&B artifact cache."""
    from dagster import Config, OpExecutionContext, job, op

    class EvictionConfig(Config):
        base_dir: str | None = None
        older_than_minutes: float | None = None
        include_offline: bool = False

    defaults = {
        "base_dir": base_dir,
        "older_than_minutes": older_than_minutes,
        "include_offline": include_offline,
    }

    @op(name=f"{name}_op")
    def evict_cache(context: OpExecutionContext, config: EvictionConfig) -> dict[str, Any]:
        target = resolve_base_dir(config.base_dir or defaults["base_dir"])
        report = evict(
            target,
            older_than_minutes=(
                config.older_than_minutes
                if config.older_than_minutes is not None
                else defaults["older_than_minutes"]
            ),
            include_offline=config.include_offline or bool(defaults["include_offline"]),
        )
        context.log.info(
            f"Evicted {len(report.evicted)} entries ({report.bytes_freed} bytes) from {target};"
            f" {len(report.kept_in_use)} in use, {report.kept_fresh} fresh,"
            f" {report.kept_offline} offline-only kept."
        )
        return report.to_json()

    @job(name=name, description="Evict expired entries from the shared W&B artifact cache.")
    def eviction_job() -> None:
        evict_cache()

    return eviction_job


def make_cache_eviction_schedule(
    *,
    cron_schedule: str = "17 * * * *",
    job_name: str = "dagster_wandb_io_cache_eviction",
    base_dir: str | None = None,
    older_than_minutes: float | None = None,
    include_offline: bool = False,
    running: bool = False,
) -> Any:
    """A schedule (hourly by default) running `make_cache_eviction_job`'s job; ``running``
    starts it without a click in the UI."""
    from dagster import DefaultScheduleStatus, ScheduleDefinition

    return ScheduleDefinition(
        default_status=DefaultScheduleStatus.RUNNING if running else DefaultScheduleStatus.STOPPED,
        job=make_cache_eviction_job(
            name=job_name,
            base_dir=base_dir,
            older_than_minutes=older_than_minutes,
            include_offline=include_offline,
        ),
        cron_schedule=cron_schedule,
    )
