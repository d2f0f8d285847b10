"""Many processes on one volume: stress, fetch-once, and one W&B run shared by parallel steps."""

import itertools
import json
import os

import pytest
from dagster import DagsterInstance, reconstructable

from dagster_wandb_io.config import WriteConfig

from helpers import SEED_RUN_CONFIG
from stress_workers import (
    CTX,
    FileFakeCloud,
    make_value,
    online_reader,
    run_processes,
    same_run_writer,
    stress_worker,
)

# Starts many processes at once (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def test_stress_eight_processes_read_write_evict(base_dir, tmp_path):
    roles = ["writer"] * 3 + ["reader"] * 3 + ["evictor"] * 2
    barrier = CTX.Barrier(len(roles))
    outs = [tmp_path / f"stats-{i}.json" for i in range(len(roles))]
    codes = run_processes(
        [
            (stress_worker, (role, i, str(base_dir), 10.0, barrier, str(outs[i])))
            for i, role in enumerate(roles)
        ]
    )
    assert codes == [0] * len(roles)
    stats = [json.loads(o.read_text()) for o in outs]
    print(
        {
            k: sum(s[k] for s in stats)
            for k in ("writes", "reads", "corrupt", "not_found", "evicted_misses", "evictions")
        }
    )
    errors = [e for s in stats for e in s["errors"]]
    assert errors == []
    assert sum(s["corrupt"] for s in stats) == 0
    assert sum(s["writes"] for s in stats) >= 12
    assert sum(s["reads"] for s in stats) >= 15
    assert sum(s["evictions"] for s in stats) >= 1


def test_concurrent_online_readers_fetch_each_file_once(base_dir, tmp_path):
    cloud_root = tmp_path / "cloud"
    cloud = FileFakeCloud(str(cloud_root))
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    writer_base = tmp_path / "writer-volume"  # the writer's cache is elsewhere: readers start cold
    writer = ArtifactStore(
        StoreSettings(
            base_dir=writer_base,
            mode="online",
            entity="my_entity",
            project="my_project",
            host="https://api.wandb.ai",
        ),
        cloud,
    )
    from dagster_wandb_io.testing import run_spec

    names = [f"shared-{i}" for i in range(3)]
    for i, name in enumerate(names):
        writer.write(make_value(i), name=name, config=WriteConfig(), run=run_spec())

    outs = [tmp_path / f"r-{i}.json" for i in range(4)]
    codes = run_processes(
        [(online_reader, (str(base_dir), str(cloud_root), names, str(o))) for o in outs]
    )
    assert codes == [0] * 4
    stats = [json.loads(o.read_text()) for o in outs]
    assert [e for s in stats for e in s["errors"]] == []
    assert sum(s["corrupt"] for s in stats) == 0
    assert sum(s["reads"] for s in stats) == 4 * 3 * 3
    downloads = (cloud_root / "downloads.log").read_text().splitlines()
    assert len(downloads) == len(set(downloads)) == 2 * len(names)  # payload + signature, once


def test_parallel_steps_of_one_dagster_run_share_the_wandb_run(base_dir, tmp_path):
    run_id = "7e4df022-1bf2-44b5-a383-bb852df4077e"
    intervals = tmp_path / "intervals.txt"
    n = 3
    barrier = CTX.Barrier(n)
    outs = [tmp_path / f"w-{i}.json" for i in range(n)]
    codes = run_processes(
        [
            (same_run_writer, (str(base_dir), run_id, i, barrier, str(intervals), str(outs[i])))
            for i in range(n)
        ]
    )
    assert codes == [0] * n
    stats = [json.loads(o.read_text()) for o in outs]
    assert [e for s in stats for e in s["errors"]] == []
    rows = [line.split() for line in intervals.read_text().splitlines()]
    assert len(rows) == 2 * n and {r[3] for r in rows} == {run_id}
    spans = sorted((float(r[1]), float(r[2])) for r in rows)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two processes used the W&B run at the same time"
    run_dirs = list(
        (base_dir / "dagster_wandb_io/wandb/runs/my_entity/my_project" / run_id).glob(
            "*/wandb/offline-run-*"
        )
    )
    assert len(run_dirs) == 2 * n  # one offline segment per use, never a shared .wandb file
    index = base_dir / "dagster_wandb_io/index/my_entity/my_project"
    assert len(list(index.glob("step-*.json"))) == 2 * n


@pytest.mark.skipif(
    os.environ.get("DAGSTER_WANDB_IO_SLOW_TESTS") != "1",
    reason="slow (each step process imports dagster+wandb: 30-60 s on 2 shared cores); the"
    " store-level test above covers concurrent use of one W&B run. Set"
    " DAGSTER_WANDB_IO_SLOW_TESTS=1 to run it.",
)
def test_multiprocess_executor_steps_write_into_one_run(base_dir, tmp_path):
    from mp_job import parallel_job

    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        from dagster import execute_job

        result = execute_job(
            reconstructable(parallel_job), instance=instance, run_config=SEED_RUN_CONFIG
        )
        assert result.success
        run_id = result.run_id
    index = base_dir / "dagster_wandb_io/index/my_entity/my_project"
    assert sorted(p.stem for p in index.glob("parallel_*.json")) == [
        f"parallel_{i}" for i in range(2)
    ]
    segments = list(
        (base_dir / "dagster_wandb_io/wandb/runs/my_entity/my_project" / run_id).iterdir()
    )
    assert len(segments) == 2
