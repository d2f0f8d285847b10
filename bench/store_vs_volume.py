"""Where state lives, measured: step outputs in the object store against the shared volume, and
W&B artifacts read from a host's cache against a cold host fetching them from the store.

Step outputs: the platform stack as shipped (object store) and the same stack with
DAGSTER_STEP_OUTPUTS=volume, alternating, on the 50-step fan-out and a 100 MB output passed
from one step to the next (probe_large_output).

W&B: the package against the platform stack's own SeaweedFS and Postgres (two cache folders
stand in for two hosts): a write, a read where the writer's cache has it, a cold host's first
read (every byte from the store) and its second (its own cache).
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.compared_stacks import PlatformStack
from bench.run_timings import timed_run
from dagster_team_celery.platform_bucket import STEP_OUTPUTS_ENV
from devstack.graphql_client import PlatformClient


class VolumeOutputsStack(PlatformStack):
    """The platform with step outputs on the shared volume (fs_io_manager)."""

    label = "platform-volume"

    def dagster_env(self) -> dict[str, str]:
        return {**super().dagster_env(), STEP_OUTPUTS_ENV: "volume"}


def run_seconds(client: PlatformClient, team: str, job: str, run_config=None) -> float:
    """From the run process starting to the run's success."""
    timing = timed_run(client, team, job, run_config=run_config)
    return timing.execution + timing.lag


def step_outputs(clients: dict[str, PlatformClient], team: str, runs: int, size_mb: int) -> dict:
    large = {"ops": {"write_payload": {"config": {"size_mb": size_mb}}}}
    seconds: dict[str, dict[str, list[float]]] = {
        label: {"fan_out": [], "large_output": []} for label in clients
    }
    for _ in range(runs):
        for label, client in clients.items():
            seconds[label]["fan_out"].append(run_seconds(client, team, "probe_fan_out"))
            seconds[label]["large_output"].append(
                run_seconds(client, team, "probe_large_output", large)
            )
    return {
        "runs": runs,
        "large_output_mb": size_mb,
        **{
            label: {shape: round(statistics.median(values), 3) for shape, values in by.items()}
            for label, by in seconds.items()
        },
    }


def wandb_environment(stack: PlatformStack) -> dict[str, str]:
    return {
        **stack.object_store_credentials(),
        "AWS_ENDPOINT_URL": stack.object_store_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "WANDB_SILENT": "true",
        "WANDB_MODE": "offline",
    }


def wandb_settings(stack: PlatformStack) -> dict[str, str]:
    """The stack's own store and index, so reads go through its SeaweedFS and Postgres."""
    shared = stack.wandb_io_shared_env()
    return {
        "store_url": shared["DAGSTER_WANDB_IO_STORE_URL"],
        "index_url": shared["DAGSTER_WANDB_IO_INDEX_URL"],
        "entity": "bench",
        "project": "reads",
    }


def timed_reads(
    name: str,
    writer_host: Path,
    cold_host: Path,
    settings: dict[str, str],
    payload: bytes,
    results: dict[str, list[float]],
) -> int:
    """Time the three reads of one write into results; returns the bytes the cold host
    fetched. The check against the payload stays inside the timing, as in the results
    already recorded, so that they remain comparable."""
    from dagster_wandb_io.config import Selection
    from dagster_wandb_io.testing import offline_store

    fetched = 0
    for phase, host in (("hit", writer_host), ("cold", cold_host), ("cold_again", cold_host)):
        reader = offline_store(host, **settings)
        started = time.perf_counter()
        assert reader.read(name, Selection()) == payload
        results[phase].append(time.perf_counter() - started)
        reader.close()
        if phase == "cold":
            fetched = reader.stats.bytes_downloaded
    return fetched


def wandb_reads(stack: PlatformStack, size_mb: int, repeat: int = 3) -> dict:
    """Write once, then time reads: the writer's host (cache hit), a cold host (from the
    store), and the cold host again (now a hit)."""
    from dagster_wandb_io.config import WriteConfig
    from dagster_wandb_io.keys import signing_environment
    from dagster_wandb_io.testing import offline_store, run_spec

    environment = wandb_environment(stack)
    settings = wandb_settings(stack)
    results: dict[str, list[float]] = {"write": [], "hit": [], "cold": [], "cold_again": []}
    fetched = 0
    payload = os.urandom(size_mb << 20)
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.update(environment)
        os.environ.update(signing_environment(Path(scratch), "bench", ["bench"]))
        os.environ["WANDB_DIR"] = scratch
        try:
            writer_host = Path(scratch) / "writer"
            for attempt in range(repeat):
                # A new name and a new cold host each round: no round reads another's cache.
                name = f"payload-{attempt}-{os.getpid()}"
                started = time.perf_counter()
                offline_store(writer_host, **settings).write(
                    payload, name=name, config=WriteConfig(), run=run_spec()
                )
                results["write"].append(time.perf_counter() - started)
                cold_host = Path(scratch) / f"cold-{attempt}"
                fetched = timed_reads(name, writer_host, cold_host, settings, payload, results)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    medians = {phase: round(statistics.median(values), 3) for phase, values in results.items()}
    return {
        "size_mb": size_mb,
        "repeat": repeat,
        "seconds": medians,
        "cold_bytes_fetched": fetched,
        "cold_fetch_mb_per_s": round(fetched / (1 << 20) / medians["cold"], 1),
    }
