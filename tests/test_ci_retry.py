"""`make test` runs a step's failed tests once more: a test that passes then is reported as
flaky and the step passes; one that fails again fails the step. Real pytest sessions, no stack."""

import json
import textwrap
from pathlib import Path

import pytest

from tests.ci import suites
from tests.ci.cost_recorder import NESTED_ENV, RETRY_ENV
from tests.ci.costs import read_log, write_report

TESTS = """
    from pathlib import Path

    def test_steady():
        pass

    def test_fails_once():
        mark = Path({mark!r})
        if not mark.exists():
            mark.write_text("failed once")
            raise AssertionError("the first run fails")

    def test_maybe_fails():
        assert {passes}
"""


def run_step(tmp_path: Path, monkeypatch, always_fails: bool) -> tuple[suites.Step, dict]:
    monkeypatch.setattr(suites, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(suites, "RESULTS", tmp_path / "results")
    # Run inside `make test`, this test's own pytest is recorded (and maybe retried): the
    # sessions it starts are recorded to their own log instead.
    monkeypatch.delenv(NESTED_ENV, raising=False)
    monkeypatch.delenv(RETRY_ENV, raising=False)
    (tmp_path / "results" / "logs").mkdir(parents=True)
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_sample.py").write_text(
        textwrap.dedent(TESTS).format(mark=str(tmp_path / "mark"), passes=not always_fails)
    )
    command = [suites.PYTHON, "-m", "pytest", "-q", *suites.PLUGIN]
    step = suites.Step("sample", [[*command, "test_sample.py"]], lane=1, cwd=folder)
    log = tmp_path / "costs.jsonl"
    runner = suites.Runner([step], log)
    monkeypatch.chdir(folder)
    runner.run()
    report = write_report("sample", log, [], tmp_path / "costs", 1.0, None)["json"]
    return step, report


@pytest.mark.integration
def test_a_test_that_passes_on_the_retry_is_flaky_and_the_step_passes(tmp_path, monkeypatch):
    step, report = run_step(tmp_path, monkeypatch, always_fails=False)
    assert step.returncode == 0, step.log.read_text()
    assert report["flaky"] == ["test_sample.py::test_fails_once"]
    assert report["failed"] == 0 and report["tests"] == 3, json.dumps(report["suites"])
    retried = [r for r in read_log(tmp_path / "costs.jsonl") if r.get("retry")]
    # Only the failed test ran again.
    assert {r["nodeid"] for r in retried if r["event"] == "phase"} == {
        "test_sample.py::test_fails_once"
    }


@pytest.mark.integration
def test_a_test_that_fails_again_fails_the_step(tmp_path, monkeypatch):
    step, report = run_step(tmp_path, monkeypatch, always_fails=True)
    assert step.returncode == suites.PYTEST_TESTS_FAILED
    assert report["flaky"] == ["test_sample.py::test_fails_once"]
    assert report["failed"] == 1, json.dumps(report["suites"])
    assert step.log.read_text().count("test_sample.py::test_maybe_fails") >= 2  # both runs
