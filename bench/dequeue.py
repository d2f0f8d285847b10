"""What a shorter dequeue interval costs: the daemon's CPU while idle, against the queue time it
saves, on the platform's local stack.

The daemon rereads dagster.yaml only when it starts, so each interval gets a restarted daemon.
Vanilla's daemon (the default 5 s) is measured over the same idle window as the platform's
first interval, for scale."""

import statistics
import time

import psutil
import yaml

from bench.run_timings import timed_run
from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack

# Dagster takes whole seconds only (an Int in QueuedRunCoordinator's config), and waits in steps
# of 0.5 s between iterations (IntervalDaemon.core_loop): 1 s is the shortest real interval, and
# 0 dequeues continuously, one iteration straight after the other.
INTERVALS = (1, 0)
IDLE_SECONDS = 60.0


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children so far."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def idle_cpu_percent(stacks: list[LocalStack], seconds: float) -> list[float]:
    """Each stack's daemon CPU, as percent of one core, over one shared idle window."""
    pids = [stack.services["daemon"].pid for stack in stacks]
    before = [tree_cpu_seconds(pid) for pid in pids]
    time.sleep(seconds)
    return [
        round(100 * (tree_cpu_seconds(pid) - cpu) / seconds, 2)
        for pid, cpu in zip(pids, before, strict=True)
    ]


def set_interval(stack: LocalStack, seconds: int) -> None:
    instance_file = stack.home / "dagster.yaml"
    instance = yaml.safe_load(instance_file.read_text())
    instance["run_coordinator"]["config"]["dequeue_interval_seconds"] = seconds
    instance_file.write_text(yaml.safe_dump(instance, sort_keys=False))
    stack.restart_service("daemon", timeout=120)


def dequeue_cost(platform: LocalStack, vanilla: LocalStack, team: str, job: str, runs: int) -> dict:
    client = PlatformClient(platform.webserver_url)
    configured = yaml.safe_load((platform.home / "dagster.yaml").read_text())["run_coordinator"][
        "config"
    ]["dequeue_interval_seconds"]
    by_interval = {}
    vanilla_cpu = None
    try:
        for interval in INTERVALS:
            set_interval(platform, interval)
            time.sleep(10)  # past the daemon's start-up work
            if vanilla_cpu is None:
                cpu, vanilla_cpu = idle_cpu_percent([platform, vanilla], IDLE_SECONDS)
            else:
                (cpu,) = idle_cpu_percent([platform], IDLE_SECONDS)
            queue = [timed_run(client, team, job).queue for _ in range(runs)]
            by_interval[str(interval)] = {
                "daemon_idle_cpu_percent": cpu,
                "queue_p50_seconds": round(statistics.median(queue), 3),
            }
    finally:
        set_interval(platform, configured)
    return {
        "idle_seconds": IDLE_SECONDS,
        "platform": by_interval,
        "vanilla_5s_daemon_idle_cpu_percent": vanilla_cpu,
    }
