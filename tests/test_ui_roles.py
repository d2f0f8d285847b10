"""The UI's roles against a real webserver, real code servers and real runs (the shared local
stack's), through the GraphQL API as the login proxy passes it on: a member acts for their own
team only, a viewer changes nothing, an admin does everything, every mutation is audited, and
no way around the checks (the websocket, the other POST endpoints) is open."""

import asyncio
import json
from collections.abc import Iterator

import pytest
import requests
import websockets

from dagster_team_celery.ui_access.people import USER_HEADER
from devstack.roles_webserver import (
    DELETE,
    RELOAD,
    RELOAD_WORKSPACE,
    TERMINATE,
    WIPE,
    Caller,
    refusal,
    roles_webserver,
)
from tests.terminate import SLEEPING, sleep_config, wait_for_event

pytestmark = pytest.mark.local_stack

TERMINAL = {"CANCELED", "SUCCESS", "FAILURE"}


@pytest.fixture(scope="module")
def roles_url(local_stack, tmp_path_factory) -> Iterator[str]:
    with roles_webserver(local_stack, tmp_path_factory.mktemp("roles")) as url:
        yield url


@pytest.fixture
def alice(roles_url) -> Caller:
    return Caller(roles_url, "alice")


@pytest.fixture
def tools(roles_url) -> Caller:
    return Caller(roles_url, "tools")


@pytest.fixture
def vera(roles_url) -> Caller:
    return Caller(roles_url, "vera")


def test_a_member_launches_and_terminates_their_own_teams_run(alice: Caller, client) -> None:
    run_id = alice.launched("bakery", "probe_sleep", sleep_config(60))
    wait_for_event(client, run_id, SLEEPING)  # started: Terminate stops it, as in the UI
    status, body = alice.graphql(TERMINATE, {"runId": run_id})
    assert status == 200, body
    assert body["data"]["terminateRun"]["__typename"] == "TerminateRunSuccess"
    assert client.wait_for_run(run_id) == "CANCELED"


def test_a_member_is_refused_the_other_teams_launch_terminate_wipe_and_delete(
    alice: Caller, tools: Caller, client
) -> None:
    status, body = alice.launch("ml", "probe_ping")
    assert status == 403, body
    assert body["data"]["launchRun"]["__typename"] == "UnauthorizedError"
    error = refusal(body)
    assert error["extensions"]["permission"] == "launch_pipeline_execution"
    assert "code location ml" in error["message"] and "alice (member of bakery)" in error["message"]

    ml_run = tools.launched("ml", "probe_sleep", sleep_config(60))
    wait_for_event(client, ml_run, SLEEPING)
    try:
        for mutation in (TERMINATE, DELETE):
            status, body = alice.graphql(mutation, {"runId": ml_run})
            assert status == 403, body
            assert "code location ml" in refusal(body)["message"]
        assert client.run(ml_run)["status"] not in TERMINAL, "alice's terminate stopped ML's run"
        status, body = alice.graphql(WIPE, {"key": ["iris_table"]})
        assert status == 403, body
        assert refusal(body)["extensions"]["permission"] == "wipe_assets"
        status, body = alice.graphql(RELOAD, {"name": "ml"})
        assert status == 403, body
    finally:
        status, body = tools.graphql(TERMINATE, {"runId": ml_run})
    assert status == 200 and body["data"]["terminateRun"]["__typename"] == "TerminateRunSuccess"
    assert client.wait_for_run(ml_run) == "CANCELED"


def test_a_viewer_reads_everything_and_changes_nothing(vera: Caller, tools: Caller) -> None:
    status, body = vera.graphql("query { runsOrError(limit: 5) { __typename } }")
    assert status == 200 and body["data"]["runsOrError"]["__typename"] == "Runs"
    for location in ("bakery", "ml"):
        status, body = vera.launch(location, "probe_ping")
        assert status == 403, body
        assert "vera (viewer) is a member of no team" in refusal(body)["message"]
    status, body = vera.graphql(RELOAD, {"name": "bakery"})
    assert status == 403, body


def test_what_no_team_owns_is_an_admins(alice: Caller, tools: Caller) -> None:
    status, body = alice.graphql(RELOAD_WORKSPACE)
    assert status == 403 and refusal(body)["extensions"]["permission"] == "admin"
    # Pools are every team's: only an admin sets a limit (on a pool of this test's own).
    pool = {"pool": "ui-roles-test-pool"}
    set_limit = (
        "mutation L($pool: String!) { setConcurrencyLimit(concurrencyKey: $pool, limit: 2) }"
    )
    delete = "mutation D($pool: String!) { deleteConcurrencyLimit(concurrencyKey: $pool) }"
    assert alice.graphql(set_limit, pool)[0] == 403
    status, body = tools.graphql(set_limit, pool)
    assert status == 200 and body["data"]["setConcurrencyLimit"] is True, body
    assert tools.graphql(delete, pool)[0] == 200


def test_an_unknown_caller_is_a_viewer_and_nobody_signed_in_changes_nothing(roles_url) -> None:
    status, body = Caller(roles_url, "mallory").launch("bakery", "probe_ping")
    assert status == 403, body
    status, body = Caller(roles_url, "").launch("bakery", "probe_ping")
    assert status == 403 and "(not signed in)" in refusal(body)["message"]


def test_no_way_around_the_checks_the_websocket_or_other_endpoints(roles_url) -> None:
    async def mutation_on_the_websocket() -> dict:
        uri = roles_url.replace("http://", "ws://") + "/graphql"
        headers = {USER_HEADER: "vera"}
        async with websockets.connect(
            uri, subprotocols=["graphql-ws"], additional_headers=headers
        ) as socket:
            await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await socket.recv())["type"] == "connection_ack"
            query = "mutation { setNuxSeen }"  # one any signed-in person may ask for
            await socket.send(json.dumps({"type": "start", "id": "1", "payload": {"query": query}}))
            return json.loads(await asyncio.wait_for(socket.recv(), 30))

    answer = asyncio.run(mutation_on_the_websocket())
    assert answer["type"] == "error", answer
    assert "only subscriptions" in answer["payload"]["message"]

    # Dagster's asset reports check the asset's location; any other change is an admin's.
    report = requests.post(
        f"{roles_url}/report_asset_materialization/iris_table", headers={USER_HEADER: "alice"},
        timeout=30,
    )  # fmt: skip
    assert report.status_code in (401, 403), report.text
    other = requests.post(f"{roles_url}/some_future_endpoint", headers={USER_HEADER: "alice"})
    assert other.status_code == 403, other.text


def test_every_mutation_is_audited_and_only_admins_read_the_log(
    alice: Caller, tools: Caller, roles_url
) -> None:
    alice.launch("ml", "probe_ping")
    alice.graphql(TERMINATE, {"runId": "no-such-run"})
    tools.graphql("mutation { setNuxSeen }")
    requests.post(
        f"{roles_url}/report_asset_materialization/iris_table", headers={USER_HEADER: "alice"},
        timeout=30,
    )  # fmt: skip
    refused = requests.get(f"{roles_url}/ui-audit", headers={USER_HEADER: "alice"}, timeout=30)
    assert refused.status_code == 403

    entries = requests.get(
        f"{roles_url}/ui-audit?limit=20", headers={USER_HEADER: "tools"}, timeout=30
    ).json()
    launch = next(e for e in entries if e["mutations"] == ["launchRun"] and e["user"] == "alice")
    assert launch["outcome"] == "refused" and launch["locations"] == ["ml"]
    assert launch["permission"] == "launch_pipeline_execution" and launch["teams"] == ["bakery"]
    assert any(e["user"] == "tools" and e["outcome"] == "allowed" for e in entries)
    # Dagster's asset reports, outside GraphQL, are audited too.
    report = "POST /report_asset_materialization/iris_table"
    assert any(e["mutations"] == [report] and e["outcome"] == "refused" for e in entries), entries


SCHEDULE_IDS = """
query { scheduleOrError(scheduleSelector: {repositoryLocationName: "bakery",
  repositoryName: "__repository__", scheduleName: "daily_cake_production"}) {
  ... on Schedule { scheduleState { id selectorId } } } }
"""
SENSOR_IDS = """
query { sensorOrError(sensorSelector: {repositoryLocationName: "bakery",
  repositoryName: "__repository__", sensorName: "new_recipe_sensor"}) {
  ... on Sensor { sensorState { id selectorId } } } }
"""
STOP_SCHEDULE = """
mutation Stop($origin: String, $selector: String, $id: String) {
  stopRunningSchedule(scheduleOriginId: $origin, scheduleSelectorId: $selector, id: $id) {
    __typename ... on UnauthorizedError { message } } }
"""
NEXT_TICK_RESULT = """
query { scheduleOrError(scheduleSelector: {repositoryLocationName: "bakery",
  repositoryName: "__repository__", scheduleName: "daily_cake_production"}) {
  ... on Schedule { futureTicks(limit: 1) { results { evaluationResult {
    runRequests { runKey } } } } } } }
"""


def test_a_stop_whose_two_ids_name_different_schedules_is_refused(alice: Caller) -> None:
    """The attack: Dagster checks the schedule found by the origin id, and the instance stops
    the stored state found by the selector id, so a member's own schedule's origin id with
    another team's selector id stopped the other team's schedule (ui_access/guards.py)."""
    schedule = alice.graphql(SCHEDULE_IDS)[1]["data"]["scheduleOrError"]["scheduleState"]
    sensor = alice.graphql(SENSOR_IDS)[1]["data"]["sensorOrError"]["sensorState"]
    origin = schedule["id"].split("::")[0]
    mixed = {"origin": origin, "selector": sensor["selectorId"], "id": None}
    status, body = alice.graphql(STOP_SCHEDULE, mixed)
    assert status == 403, body
    assert "name different schedules" in body["data"]["stopRunningSchedule"]["message"]
    assert "name different schedules" in refusal(body)["message"]
    compound = {"origin": None, "selector": None, "id": f"{origin}::{sensor['selectorId']}"}
    assert alice.graphql(STOP_SCHEDULE, compound)[0] == 403


def test_only_a_member_makes_a_code_server_evaluate_its_schedules_next_tick(
    alice: Caller, vera: Caller
) -> None:
    """A query, but it runs the team's schedule code in its code server: a dry run."""
    status, body = vera.graphql(NEXT_TICK_RESULT)
    assert any("schedule_dry_run" in error["message"] for error in body.get("errors", [])), body
    status, body = alice.graphql(NEXT_TICK_RESULT)
    assert status == 200 and not body.get("errors"), body
