"""A pytest plugin: each test's phases, with their seconds and outcome, as JSON lines.

`make test` (tests/ci/suites.py) loads it into every pytest it starts (``-p cost_recorder``,
with this folder on PYTHONPATH, so a team's own venv loads it too) and names the file in
CI_COSTS_LOG; without that variable it records nothing. Standard library only.
"""

import json
import os
import time

LOG_ENV = "CI_COSTS_LOG"
SUITE_ENV = "CI_COSTS_STEP"
# Set by tests/ci/suites.py when it runs a step's failed tests a second time.
RETRY_ENV = "CI_COSTS_RETRY"


# Set in the environment of everything a recorded session starts: a pytest that a test runs
# (the browser suite against the container stack, say) is part of that test's seconds already.
NESTED_ENV = "CI_COSTS_RECORDING"
_recording = False


def _write(record: dict) -> None:
    path = os.environ.get(LOG_ENV)
    if not (path and _recording):
        return
    record = {**record, "step": os.environ.get(SUITE_ENV, ""), "t": round(time.time(), 3)}
    if os.environ.get(RETRY_ENV):
        record["retry"] = True
    with open(path, "a") as log:
        log.write(json.dumps(record) + "\n")


def pytest_sessionstart(session) -> None:
    global _recording
    _recording = not os.environ.get(NESTED_ENV)
    os.environ[NESTED_ENV] = "1"
    _write({"event": "session_start", "args": list(session.config.invocation_params.args)})


def pytest_runtest_logreport(report) -> None:
    markers = []
    for keyword in ("local_stack", "container", "faults", "ui", "swarm"):
        if keyword in report.keywords:
            markers.append(keyword)
    _write(
        {
            "event": "phase",
            "nodeid": report.nodeid,
            "when": report.when,
            "seconds": round(report.duration, 3),
            "outcome": report.outcome,
            "markers": markers,
        }
    )


def pytest_sessionfinish(session, exitstatus) -> None:
    _write({"event": "session_finish", "exit": int(exitstatus)})
