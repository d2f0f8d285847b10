"""One team's code server dies: the other team keeps working; the UI shows the failure."""

import time

import pytest

from devstack.processes import wait_until
from tests.faults.conftest import kill_hard

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]


def test_other_team_runs_while_a_code_server_is_down_and_it_comes_back(fault_stack, fault_client):
    fault_stack.services["ml-code"].restart = False
    kill_hard(fault_stack, "ml-code")

    run_id = fault_client.submit_job("bakery", "probe_ping")
    assert fault_client.wait_for_run(run_id, timeout=180) == "SUCCESS"

    assert wait_until(lambda: fault_client.locations()["ml"].error is not None, 90)
    locations = fault_client.locations()
    print(f"\nml while down: {locations['ml'].error.splitlines()[0]}")
    assert locations["bakery"].healthy

    restarted_at = time.monotonic()
    fault_stack.services["ml-code"].start()
    assert wait_until(fault_stack.services["ml-code"].is_ready, 120)
    fault_client.reload_location("ml")
    assert wait_until(lambda: fault_client.locations()["ml"].healthy, 60)
    print(f"ml LOADED again {time.monotonic() - restarted_at:.1f}s after its restart")
