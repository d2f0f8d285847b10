"""Reading pool behaviour from runs' step events: how many pooled steps ran at once."""

from dataclasses import dataclass

from devstack.graphql_client import PlatformClient

BLOCKED = "blocked by limit for pool"


@dataclass
class StepSpan:
    run_id: str
    step: str
    start: float  # seconds, from the event log's timestamps
    end: float


def step_spans(client: PlatformClient, run_ids: list[str], prefix: str) -> list[StepSpan]:
    spans = []
    for run_id in run_ids:
        starts, ends = {}, {}
        for event in client.run_events(run_id):
            step = event.get("stepKey") or ""
            if not step.startswith(prefix):
                continue
            if event["__typename"] == "ExecutionStepStartEvent":
                starts[step] = float(event["timestamp"]) / 1000
            elif event["__typename"] in ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent"):
                ends[step] = float(event["timestamp"]) / 1000
        spans.extend(
            StepSpan(run_id, step, starts[step], ends[step]) for step in starts if step in ends
        )
    return spans


def max_overlap(spans: list[StepSpan]) -> tuple[int, int]:
    """The most steps running at once, and how many times that many did."""
    # An end and a start at the same instant do not overlap: ends sort first.
    edges = sorted([(span.start, 1) for span in spans] + [(span.end, -1) for span in spans])
    running = peak = times = 0
    for _, change in edges:
        running += change
        if running > peak:
            peak, times = running, 1
        elif running == peak and change == 1:
            times += 1
    return peak, times


def handover_gaps(spans: list[StepSpan]) -> list[float]:
    """For each step that started after another ended, the time since the latest such end:
    from a slot freeing to the next step starting (with a limit of 1)."""
    gaps = []
    for span in spans:
        ended_before = [
            other.end for other in spans if other is not span and other.end <= span.start
        ]
        if ended_before:
            gaps.append(span.start - max(ended_before))
    return gaps


def started_steps(client: PlatformClient, run_id: str, prefix: str) -> list[str]:
    return [
        event["stepKey"]
        for event in client.run_events(run_id)
        if event["__typename"] == "ExecutionStepStartEvent"
        and (event.get("stepKey") or "").startswith(prefix)
    ]


def blocked_messages(client: PlatformClient, run_id: str) -> int:
    return sum(BLOCKED in (event.get("message") or "") for event in client.run_events(run_id))
