"""Probe jobs every team ships: they prove where steps run and measure the platform.

``probe_ping`` is one step that reports which worker, interpreter and library pins ran it.
``probe_fan_out`` is 50 independent steps, ``probe_chain`` three steps in a row: the shapes
the benchmarks compare against in-process execution. ``probe_sleep`` keeps a worker busy for
a while, for tests of redeploys, faults and Terminate while a run is in flight.
``probe_pool`` is four independent steps in the concurrency pool ``probe``, for tests of
shared limits across runs and teams. ``probe_large_output`` passes one large output (100 MB by
default) from a step to the next, through wherever step outputs live (object_store.py).
"""

import hashlib
import importlib.metadata
import os
import socket
import sys
import time
from typing import Any

import dagster as dg

FAN_OUT_WIDTH = 50
POOL_WIDTH = 4
PROBE_POOL = "probe"
REPORTED_DISTRIBUTIONS = ("dagster", "dagster-celery", "celery", "pandas", "numpy", "wandb")


def runtime_report() -> dict[str, Any]:
    versions = {}
    for distribution in REPORTED_DISTRIBUTIONS:
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = None
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.executable,
        "team": os.environ.get("DAGSTER_TEAM"),
        "versions": versions,
    }


@dg.op
def report_runtime(context: dg.OpExecutionContext) -> dict[str, Any]:
    report = runtime_report()
    context.add_output_metadata({"runtime": dg.MetadataValue.json(report)})
    # Captured like any step's output: the UI shows it from the compute log manager's store.
    print(f"probe ran on {report['hostname']} in process {report['pid']}")
    return report


class LeafConfig(dg.Config):
    # Fault tests make the steps last long enough to kill a worker in the middle of them.
    seconds: float = 0.0


def leaf_name(index: int) -> str:
    return f"leaf_{index:02d}"


def pooled_name(index: int) -> str:
    return f"pooled_{index}"


def _sleeping_op(name: str, index: int, pool: str | None = None) -> dg.OpDefinition:
    @dg.op(name=name, pool=pool)
    def sleeping(config: LeafConfig) -> int:
        if config.seconds:
            time.sleep(config.seconds)
        return index

    return sleeping


def _sleep_config(op_names: list[str], seconds: float) -> dict[str, Any]:
    return {"ops": {name: {"config": {"seconds": seconds}} for name in op_names}}


def fan_out_run_config(seconds: float) -> dict[str, Any]:
    """Run config that makes every probe_fan_out step last ``seconds``."""
    return _sleep_config([leaf_name(index) for index in range(FAN_OUT_WIDTH)], seconds)


def pool_run_config(seconds: float) -> dict[str, Any]:
    """Run config that makes every probe_pool step hold its slot for ``seconds``."""
    return _sleep_config([pooled_name(index) for index in range(POOL_WIDTH)], seconds)


@dg.op
def chain_start() -> int:
    return 1


@dg.op
def chain_middle(value: int) -> int:
    return value + 1


@dg.op
def chain_end(value: int) -> int:
    return value + 1


class SleepConfig(dg.Config):
    seconds: float = 20.0


@dg.op
def sleep_then_report(context: dg.OpExecutionContext, config: SleepConfig) -> dict[str, Any]:
    # Named in the run's log, so an operator (and the terminate tests) can find the process.
    context.log.info(
        f"Sleeping {config.seconds:g}s in process {os.getpid()} on {socket.gethostname()}"
    )
    time.sleep(config.seconds)
    return runtime_report()


class PayloadConfig(dg.Config):
    size_mb: int = 100


@dg.op
def write_payload(context: dg.OpExecutionContext, config: PayloadConfig) -> bytes:
    # Random bytes: neither compressible nor the same from run to run.
    payload = os.urandom(config.size_mb << 20)
    context.add_output_metadata({"sha256": hashlib.sha256(payload).hexdigest()})
    return payload


@dg.op
def read_payload(context: dg.OpExecutionContext, payload: bytes) -> str:
    digest = hashlib.sha256(payload).hexdigest()
    context.add_output_metadata({"sha256": digest, "size": len(payload)})
    return digest


def build_probe_jobs(executor_def: dg.ExecutorDefinition) -> list[dg.JobDefinition]:
    leaves = [_sleeping_op(leaf_name(index), index) for index in range(FAN_OUT_WIDTH)]
    pooled = [_sleeping_op(pooled_name(i), i, pool=PROBE_POOL) for i in range(POOL_WIDTH)]

    # Computed where the definitions load: in the code server, this shows the code server's own
    # interpreter and pins in the UI (and in GraphQL), beside what the step reports.
    @dg.job(
        name="probe_ping",
        executor_def=executor_def,
        tags={"probe": "ping"},
        metadata={"loaded_by": dg.MetadataValue.json(runtime_report())},
    )
    def probe_ping() -> None:
        report_runtime()

    @dg.job(name="probe_fan_out", executor_def=executor_def, tags={"probe": "fan_out"})
    def probe_fan_out() -> None:
        for leaf in leaves:
            leaf()

    @dg.job(name="probe_chain", executor_def=executor_def, tags={"probe": "chain"})
    def probe_chain() -> None:
        chain_end(chain_middle(chain_start()))

    @dg.job(name="probe_sleep", executor_def=executor_def, tags={"probe": "sleep"})
    def probe_sleep() -> None:
        sleep_then_report()

    @dg.job(name="probe_pool", executor_def=executor_def, tags={"probe": "pool"})
    def probe_pool() -> None:
        for step in pooled:
            step()

    @dg.job(name="probe_large_output", executor_def=executor_def, tags={"probe": "large_output"})
    def probe_large_output() -> None:
        read_payload(write_payload())

    return [probe_ping, probe_fan_out, probe_chain, probe_sleep, probe_pool, probe_large_output]
