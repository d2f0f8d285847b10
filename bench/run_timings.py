"""Runs through the webserver, timed from their own events."""

import statistics
import time
from dataclasses import asdict, dataclass

from devstack.graphql_client import PlatformClient

PHASE_EVENTS = {
    # The daemon records RUN_STARTING when it dequeues and launches the run.
    "RunStartingEvent": "dequeued",
    "RunStartEvent": "started",
    "ExecutionStepSuccessEvent": "last_step_succeeded",
    "RunSuccessEvent": "succeeded",
}


@dataclass
class RunTiming:
    total: float  # submit -> RUN_SUCCESS
    queue: float  # submit -> dequeued by the daemon
    launch: float  # dequeued -> the run process started
    execution: float  # run process started -> last step's success recorded (by the worker)
    lag: float  # last step succeeded -> the orchestrator ended the run


def timed_run(client: PlatformClient, team: str, job: str, run_config=None) -> RunTiming:
    submitted = time.time()
    run_id = client.submit_job(team, job, run_config=run_config)
    status = client.wait_for_run(run_id, timeout=600, poll=0.1)
    if status != "SUCCESS":
        raise RuntimeError(f"{team}/{job} run {run_id} ended {status}")
    at: dict[str, float] = {}
    for event in client.run_events(run_id):
        phase = PHASE_EVENTS.get(event["__typename"])
        if phase:
            at[phase] = float(event["timestamp"]) / 1000  # the last one wins for steps
    return RunTiming(
        total=at["succeeded"] - submitted,
        queue=at["dequeued"] - submitted,
        launch=at["started"] - at["dequeued"],
        execution=at["last_step_succeeded"] - at["started"],
        lag=at["succeeded"] - at["last_step_succeeded"],
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarize(timings: list[RunTiming]) -> dict[str, dict[str, float]]:
    """p50 and p90 of each phase, in seconds."""
    phases = asdict(timings[0]).keys()
    return {
        phase: {
            "p50": round(statistics.median(getattr(t, phase) for t in timings), 3),
            "p90": round(percentile([getattr(t, phase) for t in timings], 0.9), 3),
        }
        for phase in phases
    } | {"runs": {"count": len(timings)}}


def run_succeeded_at(client: PlatformClient, run_id: str) -> float:
    for event in client.run_events(run_id):
        if event["__typename"] == "RunSuccessEvent":
            return float(event["timestamp"]) / 1000
    raise RuntimeError(f"run {run_id} has no success event")


def burst(client: PlatformClient, team: str, job: str, count: int) -> dict[str, float]:
    """``count`` runs of one team submitted at once: each run's submit-to-success time (p50,
    p90), and runs finished per minute from the first submission to the last success."""
    submitted: dict[str, float] = {}
    for _ in range(count):
        at = time.time()
        submitted[client.submit_job(team, job)] = at
    for run_id in submitted:
        status = client.wait_for_run(run_id, timeout=900, poll=0.25)
        if status != "SUCCESS":
            raise RuntimeError(f"{team}/{job} run {run_id} of the burst ended {status}")
    finished = {run_id: run_succeeded_at(client, run_id) for run_id in submitted}
    totals = [finished[run_id] - at for run_id, at in submitted.items()]
    span = max(finished.values()) - min(submitted.values())
    return {
        "runs": count,
        "p50": round(statistics.median(totals), 3),
        "p90": round(percentile(totals, 0.9), 3),
        "runs_per_minute": round(count / span * 60, 1),
    }
