"""Benchmark of dagster_wandb_io's write/read path for a ~100 MB object (offline mode).

Each object kind is measured in a fresh subprocess:

* write throughput, and peak RSS during the write relative to the object's in-memory size:
  (VmHWM during write - RSS before the object existed) / (RSS growth from building the object);
* bytes written to disk per byte of artifact: `wchar` of the writer process (bytes passed to
  write(2)) and the space of the new files counted once per inode (hard links are free);
* cache-hit read (index -> cache -> signature check -> unpickle) against a raw `pickle.load`
  of the same object from a plain pickle file, alternating runs, medians reported.

Usage: python bench/wandb_io_write_read.py [--out results.json] [--size-mb 100] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster_wandb_io.runs import RunSpec
    from dagster_wandb_io.store import ArtifactStore

KINDS = ("numpy", "realistic", "bytes")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak covers the write only.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _wchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def _disk_bytes(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in root.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def make_object(kind: str, size: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    if kind == "numpy":
        return rng.random(size // 8)
    if kind == "bytes":
        return rng.bytes(size)
    # A training set as a team would hand it over: feature matrix, labels, ids and per-row
    # Python records.
    n_rows = max(1_000, size // 524)
    n_records = n_rows * 3 // 5
    features = rng.random((n_rows, max(1, int(size * 0.9) // (n_rows * 4))), dtype=np.float32)
    return {
        "features": features,
        "labels": rng.integers(0, 10, n_rows),
        "ids": [f"sample-{i:08d}" for i in range(n_rows)],
        "records": [
            {"id": i, "source": f"s3://bucket/raw/part-{i % 997:05d}", "weight": i * 0.5}
            for i in range(n_records)
        ],
        "schema": {"features": "float32", "labels": "int64"},
    }


@dataclass
class WriteMeasure:
    """What one write of the object cost, in bytes and seconds."""

    rss_before_object: int
    rss_with_object: int
    peak_rss: int
    seconds: float
    wchar: int
    disk: int
    artifact_bytes: int
    raw_pickle: Path


@dataclass
class ReadMeasure:
    """Seconds per alternating round: the store's cache-hit read and a raw pickle.load."""

    reads: list[float] = field(default_factory=list)
    raws: list[float] = field(default_factory=list)
    read_cpu: list[float] = field(default_factory=list)
    raw_cpu: list[float] = field(default_factory=list)


def offline_store(base: Path) -> tuple[ArtifactStore, RunSpec]:
    """An offline ArtifactStore under base, and the run spec its writes belong to."""
    os.environ.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DATA_DIR": str(base / "wandb-data"),
        }
    )
    # Imported after the environment is set, so nothing imported can have read it earlier.
    from dagster_wandb_io.keys import signing_environment

    os.environ.update(signing_environment(base, "bench", ["bench"]))
    from dagster_wandb_io.runs import build_run_spec
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    store = ArtifactStore(
        StoreSettings(
            base_dir=base,
            mode="offline",
            entity="bench",
            project="bench",
            host="https://api.wandb.ai",
        )
    )
    run = build_run_spec(
        entity="bench",
        project="bench",
        dagster_run_id="bench-0000-0000",
        host="https://api.wandb.ai",
        api_key=None,
    )
    return store, run


def measure_write(
    store: ArtifactStore, run: RunSpec, kind: str, size: int, base: Path
) -> WriteMeasure:
    """Build the object, write it once, and keep a raw pickle of it for the read comparison.

    The object lives only in this frame, so it is freed before the reads are timed.
    """
    from dagster_wandb_io.config import WriteConfig

    before = _status("VmRSS")
    obj = make_object(kind, size)
    gc.collect()
    after = _status("VmRSS")
    disk_before = _disk_bytes(base / "dagster_wandb_io")
    _reset_peak()
    w0 = _wchar()
    t0 = time.perf_counter()
    result = store.write(obj, name=kind, config=WriteConfig(), run=run)
    write_s = time.perf_counter() - t0
    wchar = _wchar() - w0
    peak = _status("VmHWM")
    disk = _disk_bytes(base / "dagster_wandb_io") - disk_before

    raw = base / "raw.pickle"
    with open(raw, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    del obj
    gc.collect()
    return WriteMeasure(before, after, peak, write_s, wchar, disk, result.size, raw)


def measure_reads(store: ArtifactStore, kind: str, raw: Path, repeat: int) -> ReadMeasure:
    # Alternating the two reads spreads the machine's noise over both alike.
    from dagster_wandb_io.config import Selection

    measure = ReadMeasure()
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        value = store.read(kind, Selection())
        measure.reads.append(time.perf_counter() - t)
        measure.read_cpu.append(time.process_time() - c)
        del value
        gc.collect()
        c, t = time.process_time(), time.perf_counter()
        with open(raw, "rb") as f:
            value = pickle.load(f)
        measure.raws.append(time.perf_counter() - t)
        measure.raw_cpu.append(time.process_time() - c)
        del value
        gc.collect()
    return measure


def summary(kind: str, write: WriteMeasure, read: ReadMeasure) -> dict[str, Any]:
    obj_mem = write.rss_with_object - write.rss_before_object
    artifact_size = write.artifact_bytes
    reads, raws = read.reads, read.raws
    read_med, raw_med = statistics.median(reads), statistics.median(raws)
    return {
        "kind": kind,
        "artifact_bytes": artifact_size,
        "object_rss_bytes": obj_mem,
        "write_seconds": round(write.seconds, 4),
        "write_MBps": round(artifact_size / write.seconds / 1e6, 1),
        "write_peak_rss_over_object": round(
            (write.peak_rss - write.rss_before_object) / obj_mem, 3
        ),
        "write_extra_rss_bytes": write.peak_rss - write.rss_with_object,
        "disk_bytes_per_artifact_byte": round(write.disk / artifact_size, 3),
        "wchar_bytes_per_artifact_byte": round(write.wchar / artifact_size, 3),
        "cache_hit_read_seconds_median": round(read_med, 4),
        "cache_hit_read_seconds_min": round(min(reads), 4),
        "read_MBps": round(artifact_size / read_med / 1e6, 1),
        "raw_pickle_load_seconds_median": round(raw_med, 4),
        "raw_pickle_load_seconds_min": round(min(raws), 4),
        "cache_hit_over_raw_pickle_load": round(read_med / raw_med, 3),
        "cache_hit_over_raw_pickle_load_min": round(min(reads) / min(raws), 3),
        # CPU seconds (all threads): what the read costs when the machine is busy.
        "cache_hit_read_cpu_seconds_median": round(statistics.median(read.read_cpu), 4),
        "raw_pickle_load_cpu_seconds_median": round(statistics.median(read.raw_cpu), 4),
    }


def worker(kind: str, size: int, repeat: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="dwio-bench-"))
    store, run = offline_store(base)
    from dagster_wandb_io.config import Selection, WriteConfig

    # Warm up: start wandb's service, import numpy, touch every code path once.
    store.write(make_object(kind, 1 << 20), name="warmup", config=WriteConfig(), run=run)
    store.read("warmup", Selection())
    gc.collect()

    write = measure_write(store, run, kind, size, base)
    read = measure_reads(store, kind, write.raw_pickle, repeat)
    store.close()
    return summary(kind, write, read)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    if args.worker:
        print(json.dumps(worker(args.worker, size, args.repeat)))
        return 0

    import numpy
    import wandb

    import dagster_wandb_io

    results = []
    for kind in args.kinds.split(","):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                kind,
                "--size-mb",
                str(args.size_mb),
                "--repeat",
                str(args.repeat),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report = {
        "benchmark": "dagster_wandb_io offline write/read, one fresh process per object kind",
        "object_size_mb": args.size_mb,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "dagster_wandb_io": dagster_wandb_io.__version__,
            "wandb": wandb.__version__,
            "numpy": numpy.__version__,
        },
        "goals": {"write_peak_rss_over_object": 1.3, "cache_hit_over_raw_pickle_load": 1.2},
        "results": results,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
