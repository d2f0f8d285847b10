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
from pathlib import Path

from bench import dequeue, footprint, object_store, report, wandb_io
from bench.runs import RunTiming, burst, percentile, summarize, timed_run
from bench.stacks import PlatformStack, VanillaStack, start
from dagster_team_celery.probes import FAN_OUT_WIDTH
from devstack import config
from devstack.client import PlatformClient
from tests.stacks import wait_for_loaded_locations

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


def main() -> int:
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
    args = parser.parse_args()
    began = time.monotonic()
    state_root = config.REPO_ROOT / ".devstack" / "bench"
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
    }

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / datetime.date.today().isoformat()
    sections: dict[str, float] = {}
    results["section_seconds"] = sections

    def checkpoint(section: str, started: float) -> None:
        """Record how long a section took and save what is measured so far."""
        sections[section] = round(time.monotonic() - started, 1)
        Path(f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")

    started = time.monotonic()
    results["wandb_io"] = {
        "cross_team": wandb_io.cross_team_read(args.wandb_size_mb),
        "package": wandb_io.package_benchmark(args.wandb_size_mb, repeat=7),
        "signatures": wandb_io.signature_cost(args.wandb_size_mb),
    }
    checkpoint("wandb_io", started)

    stacks = {}
    try:
        started = time.monotonic()
        for kind in (PlatformStack, VanillaStack):
            stacks[kind.label] = start(kind, kind.label, state_root)
        results["cold_start_local_seconds"] = {
            label: round(stack.startup_seconds, 2) for label, stack in stacks.items()
        }
        clients = {label: PlatformClient(stack.webserver_url) for label, stack in stacks.items()}
        for label, client in clients.items():
            wait_for_loaded_locations(client, stacks[label].teams, timeout=180)
            timed_run(client, TEAM, "probe_ping")  # warm-up, not recorded
        checkpoint("cold_start_and_warm_up", started)
        started = time.monotonic()

        one_step: dict[str, list[RunTiming]] = {label: [] for label in stacks}
        for _ in range(args.runs):
            for label, client in clients.items():
                one_step[label].append(timed_run(client, TEAM, "probe_ping"))
        results["one_step"] = {label: summarize(t) for label, t in one_step.items()}
        checkpoint("one_step", started)
        started = time.monotonic()

        results["burst"] = {
            label: burst(client, TEAM, "probe_ping", args.burst_runs)
            for label, client in clients.items()
        }
        checkpoint("burst", started)
        started = time.monotonic()

        shapes: dict[str, dict[str, list[RunTiming]]] = {
            label: {"fan_out": [], "chain": []} for label in stacks
        }
        for _ in range(args.shape_runs):
            for label, client in clients.items():
                shapes[label]["fan_out"].append(timed_run(client, TEAM, "probe_fan_out"))
                shapes[label]["chain"].append(timed_run(client, TEAM, "probe_chain"))
        platform_stack = stacks["platform"]
        results["shapes"] = {
            "celery": {
                label: {shape: run_seconds(t) for shape, t in by_shape.items()}
                for label, by_shape in shapes.items()
            },
            "in_process": {
                "fan_out": statistics.median(
                    in_process_runs(platform_stack, "probe_fan_out", "in_process", args.shape_runs)
                ),
                "chain": statistics.median(
                    in_process_runs(platform_stack, "probe_chain", "in_process", args.shape_runs)
                ),
            },
            "multiprocess": {
                "fan_out": statistics.median(
                    in_process_runs(
                        platform_stack, "probe_fan_out", "multiprocess", args.multiprocess_runs
                    )
                ),
                "chain": statistics.median(
                    in_process_runs(
                        platform_stack, "probe_chain", "multiprocess", args.multiprocess_runs
                    )
                ),
            },
            "fan_out_width": FAN_OUT_WIDTH,
        }
        checkpoint("shapes", started)
        started = time.monotonic()

        results["worker_task_seconds"] = {
            label: task_durations(stack) for label, stack in stacks.items()
        }
        # Idle: the run workers' autoscaler retires the burst's extra forks 10-20 s after the
        # last run (worker_cli.py), and pools and caches settle.
        time.sleep(25)
        results["idle_pss_mib"] = {
            label: footprint.local_footprint(stack) for label, stack in stacks.items()
        }
        checkpoint("idle_pss", started)
        started = time.monotonic()

        results["dequeue"] = dequeue.dequeue_cost(
            stacks["platform"], stacks["vanilla"], TEAM, "probe_ping", runs=5
        )
        checkpoint("dequeue", started)
        started = time.monotonic()

        # Step outputs in the object store (as shipped) against the shared volume: a third
        # stack, only for this section, so the memory figures above are of two stacks.
        stacks["platform-volume"] = start(
            object_store.VolumeOutputsStack, "platform-volume", state_root
        )
        volume_client = PlatformClient(stacks["platform-volume"].webserver_url)
        wait_for_loaded_locations(volume_client, stacks["platform-volume"].teams, timeout=180)
        timed_run(volume_client, TEAM, "probe_ping")  # warm-up, not recorded
        results["step_outputs"] = object_store.step_outputs(
            {"object-store": clients["platform"], "volume": volume_client},
            TEAM,
            args.shape_runs,
            args.wandb_size_mb,
        )
        results["wandb_io"]["store_reads"] = object_store.wandb_reads(
            stacks["platform"], args.wandb_size_mb
        )
        checkpoint("object_store", started)
    finally:
        for stack in stacks.values():
            stack.stop()

    if args.containers is None:
        args.containers = engine_answers()
    if args.containers:
        from bench import containers

        started = time.monotonic()
        results["containers"] = containers.compose_benchmark(args.runs)
        checkpoint("containers", started)

    results["bench_seconds"] = round(time.monotonic() - began, 1)
    Path(f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.markdown(results)
    Path(f"{stem}.md").write_text(table)
    print(table)
    print(f"\nwrote {stem}.json and {stem}.md in {results['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
