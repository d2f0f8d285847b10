"""`make redeploy TEAM=x MODE=local`: one team restarts; another team's run in flight finishes."""

import time

import pytest

from scripts import redeploy

read_status = redeploy.stack_status

pytestmark = pytest.mark.local_stack


def wait_for_step_start(client, run_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["__typename"] == "ExecutionStepStartEvent" for e in client.run_events(run_id)):
            return
        time.sleep(0.5)
    pytest.fail(f"run {run_id} never started a step")


def test_redeploying_one_team_leaves_another_teams_run_in_flight_untouched(local_stack, client):
    busy_run = client.submit_job(
        "ml", "probe_sleep", run_config={"ops": {"sleep_then_report": {"config": {"seconds": 15}}}}
    )
    wait_for_step_start(client, busy_run)
    other_team_pids = {
        name: pid
        for name, pid in read_status(local_stack.state)["pids"].items()
        if name.startswith("ml-")
    }

    report = redeploy.redeploy_local(local_stack.state, "bakery")
    print(f"\nredeployed bakery in {report.seconds:.1f}s while an ml run was in flight")

    assert all(report.new_pids[name] != report.old_pids[name] for name in report.old_pids)
    assert client.run(busy_run)["status"] in ("STARTED", "SUCCESS"), "the ml run was disturbed"
    assert client.wait_for_run(busy_run, timeout=180) == "SUCCESS"
    assert {
        name: pid
        for name, pid in read_status(local_stack.state)["pids"].items()
        if name.startswith("ml-")
    } == other_team_pids
    after = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(after, timeout=180) == "SUCCESS"
    assert client.step_workers(after)["report_runtime"].startswith("bakery@")
