"""`make bench`: the platform and vanilla Dagster + dagster-celery, side by side, alternating.

Writes bench/results/<date>.json and .md and prints the table. Ratios are what count: the
machine is shared and noisy, and both configurations run interleaved on it.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import (
    dequeue,
    footprint,
    object_store_scoping,
    report,
    run_rows_security,
    store_vs_volume,
    ui_roles_latency,
    wandb_io,
)
from bench.compared_stacks import PlatformStack, VanillaStack, start
from bench.progress import Progress, previous_section_seconds
from bench.run_timings import RunTiming, burst, percentile, summarize, timed_run
from dagster_team_celery.probes import FAN_OUT_WIDTH
from devstack import config
from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack

RESULTS = config.REPO_ROOT / "bench" / "results"
TEAM = "bakery"


def in_process_runs(stack, job: str, executor: str, repeat: int) -> list[float]:
    env = {**stack.team_env(TEAM), "BENCH_JOB": job, "BENCH_EXECUTOR": executor}
    seconds = []
    for _ in range(repeat):
        result = subprocess.run(
            [
                str(config.team_bin(TEAM, "python")),
                str(config.REPO_ROOT / "bench" / "in_process.py"),
            ],
            env=env,
            cwd=config.team_dir(TEAM),
            capture_output=True,
            text=True,
            check=True,
        )
        seconds.append(json.loads(result.stdout.strip().splitlines()[-1])["run_seconds"])
    return seconds


def task_durations(stack) -> dict[str, float]:
    """p50/p90 of the Celery task per step, as the bakery's step worker logged them (its run
    worker logs to the same file)."""
    log = stack.services[f"{TEAM}-worker"].log_path.read_text(errors="replace")
    step_task = r"Task execute_plan\[[^\]]+\] succeeded in ([0-9.]+)s"
    seconds = [float(match) for match in re.findall(step_task, log)]
    return {
        "tasks": len(seconds),
        "p50": round(statistics.median(seconds), 3),
        "p90": round(percentile(seconds, 0.9), 3),
    }


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_seconds(timings: list[RunTiming]) -> float:
    """Median time from the run process starting to the run's success."""
    return round(statistics.median(t.execution + t.lag for t in timings), 3)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="1-step runs per configuration")
    parser.add_argument(
        "--burst-runs", type=int, default=20, help="1-step runs of one team submitted at once"
    )
    parser.add_argument("--shape-runs", type=int, default=2, help="fan-out/chain runs each")
    parser.add_argument("--multiprocess-runs", type=int, default=1)
    parser.add_argument("--wandb-size-mb", type=int, default=100)
    parser.add_argument(
        "--containers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the compose stack (default: when a container engine answers)",
    )
    return parser.parse_args()


@dataclass
class Bench:
    """What the sections share: the settings, the results so far, the local stacks."""

    args: argparse.Namespace
    results: dict
    progress: Progress
    stacks: dict[str, LocalStack] = field(default_factory=dict)
    clients: dict[str, PlatformClient] = field(default_factory=dict)


def wandb_io_section(bench: Bench) -> None:
    size = bench.args.wandb_size_mb
    bench.results["wandb_io"] = {
        "cross_team": wandb_io.cross_team_read(size),
        "package": wandb_io.package_benchmark(size, repeat=7),
        "signatures": wandb_io.signature_cost(size),
    }


def cold_start_section(bench: Bench) -> None:
    state_root = config.REPO_ROOT / ".devstack" / "bench"
    for kind in (PlatformStack, VanillaStack):
        bench.progress.step(f"starting the {kind.label} stack")
        bench.stacks[kind.label] = start(kind, kind.label, state_root)
    bench.results["cold_start_local_seconds"] = {
        label: round(stack.startup_seconds, 2) for label, stack in bench.stacks.items()
    }
    for label, stack in bench.stacks.items():
        client = bench.clients[label] = PlatformClient(stack.webserver_url)
        client.wait_for_locations(stack.teams, timeout=180)
        timed_run(client, TEAM, "probe_ping")  # warm-up, not recorded


def one_step_section(bench: Bench) -> None:
    one_step: dict[str, list[RunTiming]] = {label: [] for label in bench.clients}
    for number in range(bench.args.runs):
        for label, client in bench.clients.items():
            one_step[label].append(timed_run(client, TEAM, "probe_ping"))
        bench.progress.step(f"run {number + 1}/{bench.args.runs} of each")
    bench.results["one_step"] = {label: summarize(t) for label, t in one_step.items()}


def burst_section(bench: Bench) -> None:
    bench.results["burst"] = {
        label: burst(client, TEAM, "probe_ping", bench.args.burst_runs)
        for label, client in bench.clients.items()
    }


def in_process_median(bench: Bench, job: str, executor: str, repeat: int) -> float:
    return statistics.median(in_process_runs(bench.stacks["platform"], job, executor, repeat))


def shapes_section(bench: Bench) -> None:
    shapes: dict[str, dict[str, list[RunTiming]]] = {
        label: {"fan_out": [], "chain": []} for label in bench.clients
    }
    for number in range(bench.args.shape_runs):
        for label, client in bench.clients.items():
            shapes[label]["fan_out"].append(timed_run(client, TEAM, "probe_fan_out"))
            shapes[label]["chain"].append(timed_run(client, TEAM, "probe_chain"))
        bench.progress.step(f"fan-out and chain {number + 1}/{bench.args.shape_runs}")
    jobs = {"fan_out": "probe_fan_out", "chain": "probe_chain"}
    runs = {"in_process": bench.args.shape_runs, "multiprocess": bench.args.multiprocess_runs}
    bench.results["shapes"] = {
        "celery": {
            label: {shape: run_seconds(t) for shape, t in by_shape.items()}
            for label, by_shape in shapes.items()
        },
        **{
            executor: {
                shape: in_process_median(bench, job, executor, repeat)
                for shape, job in jobs.items()
            }
            for executor, repeat in runs.items()
        },
        "fan_out_width": FAN_OUT_WIDTH,
    }


def idle_pss_section(bench: Bench) -> None:
    bench.results["worker_task_seconds"] = {
        label: task_durations(stack) for label, stack in bench.stacks.items()
    }
    # Idle: the run workers' autoscaler retires the burst's extra forks 10-20 s after the
    # last run (workers/worker_roles.py), and pools and caches settle.
    time.sleep(25)
    bench.results["idle_pss_mib"] = {
        label: footprint.local_footprint(stack) for label, stack in bench.stacks.items()
    }


def dequeue_section(bench: Bench) -> None:
    bench.results["dequeue"] = dequeue.dequeue_cost(
        bench.stacks["platform"],
        bench.stacks["vanilla"],
        TEAM,
        "probe_ping",
        runs=5,
    )


def run_rows_security_section(bench: Bench) -> None:
    bench.results["run_rows_security"] = run_rows_security.event_insert_cost(
        bench.stacks["platform"], TEAM
    )


def object_store_scoping_section(bench: Bench) -> None:
    bench.results["object_store_scoping"] = object_store_scoping.request_cost(
        bench.stacks["platform"], TEAM
    )


def ui_roles_section(bench: Bench) -> None:
    folder = config.REPO_ROOT / ".devstack" / "bench" / "ui-roles"
    folder.mkdir(parents=True, exist_ok=True)
    bench.results["ui_roles"] = ui_roles_latency.request_latency(bench.stacks["platform"], folder)


def object_store_section(bench: Bench) -> None:
    # Step outputs in the object store (as shipped) against the shared volume: a third
    # stack, only for this section, so the memory figures above are of two stacks.
    state_root = config.REPO_ROOT / ".devstack" / "bench"
    volume = bench.stacks["platform-volume"] = start(
        store_vs_volume.VolumeOutputsStack, "platform-volume", state_root
    )
    volume_client = PlatformClient(volume.webserver_url)
    volume_client.wait_for_locations(volume.teams, timeout=180)
    timed_run(volume_client, TEAM, "probe_ping")  # warm-up, not recorded
    bench.results["step_outputs"] = store_vs_volume.step_outputs(
        {"object-store": bench.clients["platform"], "volume": volume_client},
        TEAM,
        bench.args.shape_runs,
        bench.args.wandb_size_mb,
    )
    bench.results["wandb_io"]["store_reads"] = store_vs_volume.wandb_reads(
        bench.stacks["platform"], bench.args.wandb_size_mb
    )


def containers_section(bench: Bench) -> None:
    from bench import containers

    bench.results["containers"] = containers.compose_benchmark(bench.args.runs)


# In order; the local ones share the stacks that cold_start starts.
LOCAL_SECTIONS: dict[str, Callable[[Bench], None]] = {
    "cold_start_and_warm_up": cold_start_section,
    "one_step": one_step_section,
    "burst": burst_section,
    "shapes": shapes_section,
    "idle_pss": idle_pss_section,
    "dequeue": dequeue_section,
    "run_rows_security": run_rows_security_section,
    "object_store_scoping": object_store_scoping_section,
    "ui_roles": ui_roles_section,
    "object_store": object_store_section,
}


def run_section(bench: Bench, index: int, section: Callable[[Bench], None], stem: Path) -> None:
    """Run one section, record how long it took and save what is measured so far."""
    name = bench.progress.sections[index]
    bench.progress.start(index)
    started = time.monotonic()
    section(bench)
    bench.results["section_seconds"][name] = round(time.monotonic() - started, 1)
    Path(f"{stem}.json").write_text(json.dumps(bench.results, indent=2) + "\n")


def main() -> int:
    args = parse_args()
    began = time.monotonic()
    if args.containers is None:
        args.containers = engine_answers()
    names = ["wandb_io", *LOCAL_SECTIONS, *(["containers"] if args.containers else [])]
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
        "section_seconds": {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args, results, Progress(names, previous_section_seconds(RESULTS)))
    stem = RESULTS / datetime.date.today().isoformat()
    run_section(bench, 0, wandb_io_section, stem)
    try:
        for index, section in enumerate(LOCAL_SECTIONS.values(), start=1):
            run_section(bench, index, section, stem)
    finally:
        for stack in bench.stacks.values():
            stack.stop()
    if args.containers:
        run_section(bench, len(names) - 1, containers_section, stem)
    results["bench_seconds"] = round(time.monotonic() - began, 1)
    Path(f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    Path(f"{stem}.md").write_text(table)
    print(table)
    print(f"\nwrote {stem}.json and {stem}.md in {results['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
