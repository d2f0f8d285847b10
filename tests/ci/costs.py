"""What each suite of a `make test` run cost, from cost_recorder's log: JSON and Markdown.

A suite is a test file (or a team's folder); its seconds are the sum of its tests' setup, call
and teardown, so a stack that a session or module fixture starts is counted where it started.
"""

import json
from collections import defaultdict
from pathlib import Path

BUDGET_SECONDS = 1800
# What a suite's tests start, from their markers (pyproject.toml); the first match is shown.
STARTS = {
    "swarm": "two dockerd engines in network namespaces, the stack deployed on them",
    "container": "a compose stack (one per test file) from the images step's images",
    "faults": "the fault suite's own local stack",
    "ui": "Chromium, against the shared local stack (or a deployed one)",
    "shared_stack": "the shared local stack (Postgres, Redis, SeaweedFS, every team)",
    "local_stack": "local stacks of its own (`make dev`'s, a scaffolded team's)",
}


def read_log(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def suite_of(record: dict) -> str:
    path = record["nodeid"].split("::")[0]
    if record["step"].startswith("team "):
        return f"code_locations/{record['step'][5:]}/{path}"
    return path


def retried(records: list[dict]) -> tuple[set[str], set[str]]:
    """The tests run again (tests/ci/suites.py retries a step's failed tests once), and those
    that failed again."""
    again = {r["nodeid"] for r in records if r["event"] == "phase" and r.get("retry")}
    failed_again = {
        r["nodeid"]
        for r in records
        if r["event"] == "phase" and r.get("retry") and r["outcome"] == "failed"
    }
    return again, failed_again


def flaky(records: list[dict]) -> list[str]:
    """Tests that failed, then passed when run again."""
    again, failed_again = retried(records)
    return sorted(again - failed_again)


def suites(records: list[dict]) -> list[dict]:
    seconds: dict[str, float] = defaultdict(float)
    tests: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    markers: dict[str, set[str]] = defaultdict(set)
    steps: dict[str, str] = {}
    again, _ = retried(records)
    for record in records:
        if record["event"] != "phase":
            continue
        suite = suite_of(record)
        steps[suite] = record["step"]
        # A retry's seconds are a cost of the run; its tests were counted the first time, and
        # a retried test's failures are the retry's (a test that passed then is flaky).
        seconds[suite] += record["seconds"]
        markers[suite].update(record.get("markers", []))
        retry = bool(record.get("retry"))
        if not retry and (
            record["when"] == "call"
            or (record["when"] == "setup" and record["outcome"] != "passed")
        ):
            tests[suite] += 1
        if record["outcome"] == "failed" and (retry or record["nodeid"] not in again):
            failed[suite] += 1
    rows = []
    for suite in seconds:
        starts = next((text for marker, text in STARTS.items() if marker in markers[suite]), "")
        rows.append(
            {
                "suite": suite,
                "step": steps[suite],
                "tests": tests[suite],
                "failed": failed[suite],
                "seconds": round(seconds[suite], 1),
                "starts": starts or "no stack: its own throwaway processes at most",
            }
        )
    return sorted(rows, key=lambda row: -row["seconds"])


def markdown(report: dict) -> str:
    total = report["total_seconds"]
    lines = [
        f"# `{report['command']}` costs: {total:.0f} s ({total / 60:.1f} min; budget "
        f"{BUDGET_SECONDS // 60} min): {report['tests']} tests, {report['failed']} failed",
        "",
        *[f"- flaky (failed, then passed on the retry): `{nodeid}`" for nodeid in report["flaky"]],
        *([""] if report["flaky"] else []),
        "| step | seconds | share | CPU seconds |",
        "|---|---:|---:|---:|",
    ]
    if report.get("setup_seconds"):
        setup = report["setup_seconds"]
        lines.append(f"| machine setup before the suites | {setup:.0f} | {setup / total:.0%} | |")
    for step in report["steps"]:
        cpu = step.get("cpu_seconds")
        lines.append(
            f"| {step['name']} | {step['seconds']:.0f} | {step['seconds'] / total:.0%} "
            f"| {'' if cpu is None else f'{cpu:.0f}'} |"
        )
    lines += [
        "",
        "Steps in different lanes run at once, so their seconds add up to more than the total. "
        "CPU seconds are the step's processes' (containers' not included).",
        "",
        "| suite | tests | seconds | what it starts |",
        "|---|---:|---:|---|",
    ]
    for row in report["suites"]:
        failed = f" ({row['failed']} failed)" if row["failed"] else ""
        tests = f"{row['tests']}{failed}"
        lines.append(f"| `{row['suite']}` | {tests} | {row['seconds']:.0f} | {row['starts']} |")
    return "\n".join(lines) + "\n"


def write_report(
    command: str,
    log: Path,
    steps: list[dict],
    stem: Path,
    suites_seconds: float,
    setup_seconds: float | None,
) -> dict:
    """``steps``: each step's name, seconds and whether it passed; ``suites_seconds``: the
    wall-clock time of all of them; ``setup_seconds``: the machine's setup before them."""
    records = read_log(log)
    rows = suites(records)
    report = {
        "command": command,
        "total_seconds": round(suites_seconds + (setup_seconds or 0), 1),
        "setup_seconds": None if setup_seconds is None else round(setup_seconds, 1),
        "suites_seconds": round(suites_seconds, 1),
        "tests": sum(row["tests"] for row in rows),
        "failed": sum(row["failed"] for row in rows),
        "flaky": flaky(records),
        "steps": steps,
        "suites": rows,
    }
    Path(f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    Path(f"{stem}.md").write_text(text)
    return {"json": report, "markdown": text}
