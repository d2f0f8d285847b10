"""Process entry points for the multi-process tests (importable by spawned children)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import random
import time
import traceback
from pathlib import Path
from typing import Any

from dagster_wandb_io import ArtifactNotFoundError, CacheCorruptionError
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.eviction import evict
from dagster_wandb_io.locks import FileLock
from dagster_wandb_io.testing import FakeCloud, offline_store, run_spec

# forkserver: children fork from one clean, pre-warmed server process (no state inherited from
# the pytest process, unlike fork; no per-child interpreter start-up, unlike spawn).
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["stress_workers"])


def run_processes(specs: list[tuple[Any, tuple]], timeout: float = 150) -> list[int | None]:
    """Start a process per (target, args), wait for each (killing one past `timeout`), and
    return their exit codes."""
    processes = [CTX.Process(target=target, args=args) for target, args in specs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
        if process.is_alive():
            process.kill()
    return [process.exitcode for process in processes]


def make_value(seed: int, size: int = 150_000) -> dict[str, Any]:
    rnd = random.Random(seed)
    blob = rnd.randbytes(size)
    return {"seed": seed, "blob": blob, "sha": hashlib.sha256(blob).hexdigest()}


def value_ok(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and hashlib.sha256(value["blob"]).hexdigest() == value["sha"]
        and value == make_value(value["seed"], len(value["blob"]))
    )


def _finish(out: Path, stats: dict[str, Any]) -> None:
    out.write_text(json.dumps(stats))


def stress_worker(
    role: str,
    index: int,
    base_dir: str,
    seconds: float,
    barrier: Any,
    out: str,
    shared: dict[str, Any] | None = None,
) -> None:
    """One role of the stress test. With `shared` (store_url, index_url and the store's
    environment), hosts share the object store and the index; writers then publish once per run
    and name, racing each other on a few runs, and record what each write returned."""
    stats: dict[str, Any] = {
        "role": role,
        "writes": 0,
        "reads": 0,
        "corrupt": 0,
        "errors": [],
        "not_found": 0,
        "evicted_misses": 0,
        "evictions": 0,
        "writes_refused": 0,
        "published": [],
    }
    base = Path(base_dir)
    rnd = random.Random(index)
    settings: dict[str, Any] = {}
    if shared is not None:
        os.environ.update(shared["environment"])
        settings = {"store_url": shared["store_url"], "index_url": shared["index_url"]}
    store = offline_store(base, **settings)
    if role == "writer":
        # Start wandb's service before the clock starts, so all roles overlap for `seconds`.
        import wandb

        wandb.setup()
    barrier.wait(timeout=120)
    deadline = time.time() + seconds
    # On a busy machine, keep going (up to a hard stop) until each role did a minimum of work.
    hard_stop = deadline + 90
    # One evictor of each pair keeps going until it evicted something: the tests count on an
    # eviction, which a busy machine may not fit into `seconds`.
    evictions = 1 if index % 2 == 0 else 0
    minimum = {
        "writer": ("writes", 4),
        "reader": ("reads", 5),
        "evictor": ("evictions", evictions),
    }[role]

    def more() -> bool:
        now = time.time()
        return now < deadline or (now < hard_stop and stats[minimum[0]] < minimum[1])

    try:
        while more():
            try:
                if role == "writer" and shared is not None:
                    # Every writer, on either host, races the others on the same few runs.
                    # Run aliases use a run id's first 8 characters: make them differ.
                    dagster_run = f"{rnd.randrange(4)}" * 8 + "-0000-0000-0000-000000000000"
                    name = "shared" if rnd.random() < 0.5 else f"own-{index}"
                    result = store.write(
                        make_value(1000 * index + rnd.randrange(5)),
                        name=name,
                        config=WriteConfig(),
                        run=run_spec(dagster_run),
                        once_per_run=True,
                    )
                    stats["published"].append([dagster_run, name, result.digest, result.version])
                    stats["writes"] += 1
                elif role == "writer":
                    if rnd.random() < 0.5:
                        # Same name, few distinct contents: concurrent commits of one digest.
                        store.write(
                            make_value(rnd.randrange(3)),
                            name="shared",
                            config=WriteConfig(),
                            run=run_spec(f"run-{index}"),
                        )
                    else:
                        store.write(
                            make_value(1000 * index + rnd.randrange(5)),
                            name=f"own-{index}",
                            config=WriteConfig(),
                            run=run_spec(f"run-{index}"),
                        )
                    stats["writes"] += 1
                elif role == "reader":
                    name = "shared" if rnd.random() < 0.5 else f"own-{rnd.randrange(3)}"
                    value = store.read(name, Selection())
                    stats["reads"] += 1
                    if not value_ok(value):
                        stats["corrupt"] += 1
                elif role == "evictor":
                    # With a store of record, nothing written offline is only here.
                    report = evict(base, older_than_minutes=0, include_offline=shared is None)
                    stats["evictions"] += len(report.evicted)
                    time.sleep(0.1)
            except ArtifactNotFoundError:
                stats["not_found"] += 1
                time.sleep(0.01)
            except CacheCorruptionError as exc:
                if "no longer in the shared cache" in str(exc):
                    stats["evicted_misses"] += 1  # evicted offline data: expected, not corrupt
                elif "evicted the moment it was committed" in str(exc):
                    # An evictor at 0 minutes took the entry between its commit and the
                    # writer's hold: refused, and nothing was published.
                    stats["writes_refused"] += 1
                else:
                    stats["errors"].append(repr(exc))
    except BaseException:
        stats["errors"].append(traceback.format_exc())
    store.close()
    _finish(Path(out), stats)


class FileFakeCloud(FakeCloud):
    """FakeCloud whose state lives on disk, so several processes share one 'W&B'."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)

    def _sync(self, mutate: bool, fn: Any) -> Any:
        with FileLock(self._root / "cloud.lock"):
            state_path = self._root / "state.pickle"
            if state_path.exists():
                self.collections, self.aliases = pickle.loads(state_path.read_bytes())
            result = fn()
            if mutate:
                state_path.write_bytes(pickle.dumps((self.collections, self.aliases)))
            return result

    def log_artifact(self, run, artifact, aliases):
        return self._sync(True, lambda: FakeCloud.log_artifact(self, run, artifact, aliases))

    def resolve(self, entity, project, name, ref):
        return self._sync(False, lambda: FakeCloud.resolve(self, entity, project, name, ref))

    def download_file(self, artifact, path, dest):
        time.sleep(0.05)  # widen the race window
        with open(self._root / "downloads.log", "a") as f:
            f.write(f"{artifact.digest} {path}\n")
        return FakeCloud.download_file(self, artifact, path, dest)


def online_reader(base_dir: str, cloud_root: str, names: list[str], out: str) -> None:
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    stats: dict[str, Any] = {"reads": 0, "corrupt": 0, "errors": []}
    try:
        store = ArtifactStore(
            StoreSettings(
                base_dir=Path(base_dir),
                mode="online",
                entity="my_entity",
                project="my_project",
                host="https://api.wandb.ai",
            ),
            FileFakeCloud(cloud_root),
        )
        for _ in range(3):
            for name in names:
                value = store.read(name, Selection())
                stats["reads"] += 1
                stats["corrupt"] += not value_ok(value)
        store.close()
    except BaseException:
        stats["errors"].append(traceback.format_exc())
    _finish(Path(out), stats)


def same_run_writer(
    base_dir: str, dagster_run_id: str, index: int, barrier: Any, intervals: str, out: str
) -> None:
    """Writes two artifacts into the W&B run of one Dagster run, recording when it holds it."""
    import wandb

    import dagster_wandb_io.publish as store_module

    wandb.setup()  # start wandb's service before the writers race for the run
    barrier.wait(timeout=120)

    real_open_run = store_module.open_run
    stats: dict[str, Any] = {"writes": 0, "errors": []}

    from contextlib import contextmanager

    @contextmanager
    def recording_open_run(*args: Any, **kwargs: Any):
        with real_open_run(*args, **kwargs) as run:
            start = time.time()
            time.sleep(0.05)
            yield run
            with open(intervals, "a") as f:
                f.write(f"{os.getpid()} {start} {time.time()} {run.id}\n")

    store_module.open_run = recording_open_run
    try:
        store = offline_store(Path(base_dir))
        for i in range(2):
            store.write(
                {"i": index, "n": i},
                name=f"step-{index}-{i}",
                config=WriteConfig(),
                run=run_spec(dagster_run_id),
            )
            stats["writes"] += 1
    except BaseException:
        stats["errors"].append(traceback.format_exc())
    _finish(Path(out), stats)


def _shared_store(base_dir: str, shared: dict[str, Any]) -> Any:
    os.environ.update(shared["environment"])
    return offline_store(
        Path(base_dir), store_url=shared["store_url"], index_url=shared["index_url"]
    )


def cold_reader(
    base_dir: str, shared: dict[str, Any], names: list[str], barrier: Any, out: str
) -> None:
    """Reads `names` on a host that shares the store; reports the bytes it fetched."""
    stats: dict[str, Any] = {"reads": 0, "corrupt": 0, "bytes_downloaded": 0, "errors": []}
    try:
        store = _shared_store(base_dir, shared)
        barrier.wait(timeout=120)
        for name in names:
            stats["corrupt"] += not value_ok(store.read(name, Selection()))
            stats["reads"] += 1
        stats["bytes_downloaded"] = store.stats.bytes_downloaded
        store.close()
    except BaseException:
        stats["errors"].append(traceback.format_exc())
    _finish(Path(out), stats)


def racing_publisher(
    base_dir: str, shared: dict[str, Any], dagster_run: str, seed: int, barrier: Any, out: str
) -> None:
    """One of two executions of the same step: publishes its own content, once per run."""
    stats: dict[str, Any] = {"errors": []}
    try:
        import wandb

        wandb.setup()
        store = _shared_store(base_dir, shared)
        value = make_value(seed)
        barrier.wait(timeout=120)
        result = store.write(
            value, name="raced", config=WriteConfig(), run=run_spec(dagster_run), once_per_run=True
        )
        stats.update(version=result.version, digest=result.digest, reused=result.reused_earlier)
        store.close()
    except BaseException:
        stats["errors"].append(traceback.format_exc())
    _finish(Path(out), stats)
