"""`make up`'s wait: every 10 s it names the services not ready yet and how long each waited."""

import pytest

from scripts import wait_healthy


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(wait_healthy.time, "monotonic", lambda: now[0])
    return now


def test_progress_names_what_is_still_starting_and_for_how_long(clock, capsys):
    progress = wait_healthy.Progress(started=clock[0])
    rows = [
        ("postgres", "running/healthy", True, False),
        ("webserver", "running/starting", False, False),
        ("daemon", "running/starting", False, False),
    ]
    progress.update(rows)
    assert capsys.readouterr().out == ""  # nothing before the first 10 s
    clock[0] += 4
    progress.update([*rows[:2], ("daemon", "running/healthy", True, False)])
    clock[0] += 8
    progress.update([*rows[:2], ("daemon", "running/healthy", True, False)])
    line = capsys.readouterr().out.strip()
    assert line == "[12s] 2/3 services ready; waiting for webserver (running/starting, 12s)"
    clock[0] += 3
    progress.update(rows)
    assert capsys.readouterr().out == ""  # at most one line per 10 s


def test_a_location_not_reachable_yet_is_reloaded_and_a_broken_one_reported_at_once(
    monkeypatch, capsys
):
    unreachable = (
        "dagster._core.errors.DagsterUserCodeUnreachableError: gRPC Error code: UNAVAILABLE"
    )
    answers = [{"bakery": unreachable, "ml": None}, {"bakery": None, "ml": None}]
    calls = []

    def reload_workspace(url):
        calls.append(url)
        return answers[len(calls) - 1]

    monkeypatch.setattr(wait_healthy, "reload_workspace", reload_workspace)
    monkeypatch.setattr(wait_healthy.time, "sleep", lambda seconds: None)
    assert wait_healthy.reload_until_reachable("http://ui") == {"bakery": None, "ml": None}
    assert len(calls) == 2
    assert "not reachable yet: bakery" in capsys.readouterr().out

    broken = {"bakery": "ImportError: No module named 'bakery.definitions'"}
    monkeypatch.setattr(wait_healthy, "reload_workspace", lambda url: broken)
    assert wait_healthy.reload_until_reachable("http://ui") == broken
