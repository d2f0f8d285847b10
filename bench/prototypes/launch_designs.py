"""[fast-runs] design prototypes, measured side by side: how a run's process starts.

    python -m bench.prototypes.launch_designs [--runs 10] [--burst-runs 20]

Starts three local stacks (bakery only, so three fit on a small machine):

- spawn:           today's isolation path, `--run-launcher process`: the team's code server
                   spawns a fresh interpreter per run (Dagster's DefaultRunLauncher);
- forkserver:      design 2, the code server (`dagster api grpc` through forkserver_code_server)
                   forks each run from a forkserver that preloaded the team's code;
- warm-run-worker: design 1, the platform's default: the team's warm run worker forks it.

Then one warm-up run each, `--runs` timed probe_ping runs alternating between the stacks,
`--burst-runs` runs of the team at once on each, a kill -9 of a running run process on each
stack, and the idle PSS of each team's processes. Writes bench/results/launch-designs.json.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import psutil

from bench import footprint
from bench.compared_stacks import PlatformStack
from bench.run_timings import RunTiming, burst, summarize, timed_run
from devstack import config
from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack, StackSettings
from devstack.processes import Service

TEAM = "bakery"
PROTOTYPES = Path(__file__).resolve().parent
RESULTS = config.REPO_ROOT / "bench" / "results"
PID_MESSAGE = re.compile(r"Started process for run \(pid: (\d+)\)")


class SpawnStack(PlatformStack):
    """Today's launch path: a fresh interpreter per run, spawned by the team's code server."""

    label = "spawn"


class WarmStack(PlatformStack):
    """Design 1: the team's warm run worker forks the run (the platform's new default)."""

    label = "warm-run-worker"


class ForkserverStack(PlatformStack):
    label = "forkserver"

    def _code_server(self, team: str) -> Service:
        # The platform's code server, started as `dagster api grpc` through the forkserver
        # wrapper instead of `dagster code-server start` (same host, port, module, location).
        service = super()._code_server(team)
        python = str(config.team_bin(team, "python", self.root))
        service.argv[:3] = [python, "-m", "forkserver_code_server", "api", "grpc"]
        service.env.update(
            PYTHONPATH=str(PROTOTYPES),
            PROTO_MP_CONTEXT="forkserver",
            PROTO_DEFS_MODULE=f"{team}.definitions",
            PROTO_TRACE_RUN_IMPORTS="1",
        )
        return service


def code_tree(stack: LocalStack) -> list[dict]:
    """Every process of the team's code server tree, with its PSS (MiB)."""
    root = psutil.Process(stack.services[f"{TEAM}-code"].pid)
    rows = []
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            rows.append(
                {
                    "pid": process.pid,
                    "ppid": process.ppid(),
                    "cmd": " ".join(process.cmdline())[:110],
                    "pss_mib": round(process.memory_full_info().pss / footprint.MIB, 1),
                }
            )
    return rows


def code_pss(stack: LocalStack) -> float:
    return round(footprint.tree_pss(stack.services[f"{TEAM}-code"].pid) / footprint.MIB, 1)


def kill_run_process(stack: LocalStack, client: PlatformClient) -> dict:
    """Start a 120 s probe_sleep, SIGKILL its run process once started, time the run's end."""
    run_id = client.submit_job(
        TEAM, "probe_sleep", run_config={"ops": {"sleep_then_report": {"config": {"seconds": 120}}}}
    )
    deadline = time.monotonic() + 120
    pid = None
    while pid is None and time.monotonic() < deadline:
        for event in client.run_events(run_id):
            match = PID_MESSAGE.search(event.get("message") or "")
            if match:
                pid = int(match.group(1))
        time.sleep(0.2)
    if pid is None:
        return {"error": "no run process pid reported"}
    tree = {p.pid for p in psutil.Process(stack.services[f"{TEAM}-code"].pid).children(True)}
    parent = psutil.Process(pid).ppid()
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    zombie_seconds = None
    while time.monotonic() - killed < 30:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                time.sleep(0.1)
                continue
        except psutil.NoSuchProcess:
            zombie_seconds = round(time.monotonic() - killed, 2)  # reaped: os.kill(pid, 0) fails
            break
        time.sleep(0.1)
    status = client.wait_for_run(run_id, timeout=240, poll=0.5)
    messages = [
        e.get("message")
        for e in client.run_events(run_id)
        if re.search(
            "exited without|SIGKILL|no longer runs|terminated unexpectedly", e.get("message") or ""
        )
    ]
    return {
        "pid": pid,
        "in_code_server_tree": pid in tree,
        "parent_pid": parent,
        "reaped_after_s": zombie_seconds,
        "final_status": status,
        "noticed_after_s": round(time.monotonic() - killed, 1),
        "launcher_message": messages[:1],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.prototypes.launch_forkserver")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burst-runs", type=int, default=20)
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    return parser.parse_args()


def start_stacks(stacks: dict[str, LocalStack], state_root: Path) -> None:
    """Start the three stacks one after another, into the caller's dict.

    Each joins `stacks` as soon as it is up, so that the caller's `finally` stops the ones
    already started when a later one fails.
    """
    for kind in (SpawnStack, ForkserverStack, WarmStack):
        settings = StackSettings(
            name=f"proto-{kind.label}",
            fresh=True,
            state_root=state_root,
            flower=False,
            teams=[TEAM],
            run_launcher="warm" if kind is WarmStack else "process",
        )
        stack = kind(settings)
        stack.start(timeout=300)
        stacks[kind.label] = stack
        print(f"{kind.label}: up in {stack.startup_seconds:.1f}s", flush=True)


def connect(stacks: dict[str, LocalStack]) -> dict[str, PlatformClient]:
    clients = {label: PlatformClient(stack.webserver_url) for label, stack in stacks.items()}
    for client in clients.values():
        client.wait_for_locations([TEAM], timeout=180)
    return clients


def startup(stacks: dict[str, LocalStack]) -> dict:
    return {
        "startup_seconds": {label: round(s.startup_seconds, 1) for label, s in stacks.items()},
        "code_ready_seconds": {
            label: s.ready_seconds.get(f"{TEAM}-code") for label, s in stacks.items()
        },
    }


def idle_code(stacks: dict[str, LocalStack], when: str) -> dict:
    """The code server tree's PSS, in total and per process, keyed `..._{when}`."""
    return {
        f"idle_pss_{when}": {label: code_pss(s) for label, s in stacks.items()},
        f"code_tree_{when}": {label: code_tree(s) for label, s in stacks.items()},
    }


def one_step_runs(clients: dict[str, PlatformClient], runs: int) -> dict:
    warm_up = {
        label: timed_run(client, TEAM, "probe_ping").__dict__ for label, client in clients.items()
    }
    timings: dict[str, list[RunTiming]] = {label: [] for label in clients}
    # Rounds alternate between the stacks so that the machine's noise falls on all alike.
    for index in range(runs):
        for label, client in clients.items():
            timings[label].append(timed_run(client, TEAM, "probe_ping"))
        print(f"round {index + 1}/{runs} done", flush=True)
    return {
        "warm_up": warm_up,
        "one_step": {label: summarize(t) for label, t in timings.items()},
        "one_step_raw": {label: [t.__dict__ for t in ts] for label, ts in timings.items()},
    }


def kill_each(stacks: dict[str, LocalStack], clients: dict[str, PlatformClient]) -> dict:
    killed: dict[str, dict] = {}
    for label, client in clients.items():
        killed[label] = kill_run_process(stacks[label], client)
        print(f"kill -9 on {label}: {killed[label]}", flush=True)
    return killed


def measure(args: argparse.Namespace, stacks: dict[str, LocalStack]) -> dict:
    results: dict = {"runs": args.runs}
    clients = connect(stacks)
    # The pauses let the stacks settle, so idle PSS is not caught mid start-up or mid run.
    time.sleep(10)
    results |= startup(stacks)
    results |= idle_code(stacks, "before_runs")
    results |= one_step_runs(clients, args.runs)
    time.sleep(10)
    results |= idle_code(stacks, "after_runs")
    results["idle_footprint_after_runs"] = {
        label: footprint.local_footprint(s) for label, s in stacks.items()
    }
    if args.kill:
        results["kill_9"] = kill_each(stacks, clients)
    results["burst"] = {
        label: burst(client, TEAM, "probe_ping", args.burst_runs)
        for label, client in clients.items()
    }
    print(f"burst: {results['burst']}", flush=True)
    results["code_logs"] = {
        label: str(s.services[f"{TEAM}-code"].log_path) for label, s in stacks.items()
    }
    return results


def print_summary(results: dict, out: Path) -> None:
    # The per-process trees and raw timings stay in the file: too long for the terminal.
    print(
        json.dumps(
            {k: results[k] for k in results if not k.startswith(("code_tree", "one_step_raw"))},
            indent=2,
        )
    )
    print("\nphase p50 / p90 (s)")
    phases = ["total", "queue", "launch", "execution", "lag"]
    print(f"{'stack':<14}" + "".join(f"{p:>16}" for p in phases))
    for label, summary in results["one_step"].items():
        cells = "".join(f"{summary[p]['p50']:>8.2f}/{summary[p]['p90']:<7.2f}" for p in phases)
        print(f"{label:<14}{cells}")
    print(f"\nwrote {out}")


def main() -> int:
    args = parse_args()
    stacks: dict[str, LocalStack] = {}
    try:
        start_stacks(stacks, config.REPO_ROOT / ".devstack" / "proto-forkserver")
        results = measure(args, stacks)
    finally:
        for stack in stacks.values():
            stack.stop()

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "launch-designs.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_summary(results, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
