"""The UI's roles in Chromium: what a bakery member and a viewer can click, and what the UI
greys out for them, on a webserver with roles beside the local stack's (tests/ui_roles.py).
Each person is named by the header the login proxy would set for them."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from dagster_team_celery.ui_access.people import USER_HEADER
from tests.terminate import sleep_config
from tests.ui.browser import new_context
from tests.ui.target import UiTarget
from tests.ui_roles import Caller, roles_webserver

pytestmark = pytest.mark.ui

RUN_TIMEOUT_MS = 180_000
MATERIALIZE = re.compile(r"^Materialize$")


@pytest.fixture(scope="module")
def roles_url(ui_target: UiTarget, tmp_path_factory) -> Iterator[str]:
    if ui_target.local_stack is None:
        pytest.skip("people's logins exist on the local stack's roles webserver only")
    with roles_webserver(ui_target.local_stack, tmp_path_factory.mktemp("roles-ui")) as url:
        yield url


def page_as(browser: Browser, user: str) -> Iterator[Page]:
    with new_context(browser, extra_http_headers={USER_HEADER: user}) as context:
        yield context.new_page()


@pytest.fixture
def alice_page(browser: Browser) -> Iterator[Page]:
    yield from page_as(browser, "alice")


@pytest.fixture
def vera_page(browser: Browser) -> Iterator[Page]:
    yield from page_as(browser, "vera")


def test_a_member_materializes_their_teams_asset_and_not_the_other_teams(
    alice_page: Page, roles_url: str, screenshots: Path
) -> None:
    page = alice_page
    page.goto(f"{roles_url}/assets/iris_table")
    expect(page.locator('a[href="/locations/ml/"]').first).to_be_visible()
    expect(page.locator("button", has_text=MATERIALIZE)).to_be_disabled()
    page.screenshot(path=screenshots / "roles-member-other-team-asset.png")

    page.goto(f"{roles_url}/assets/ingredients")
    page.locator("button", has_text=MATERIALIZE).click()
    expect(page.get_by_text("Launched run")).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    final_status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(final_status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(final_status).to_have_text("Success")


def test_a_member_terminates_their_teams_run_and_cannot_the_other_teams(
    alice_page: Page, roles_url: str, client, screenshots: Path
) -> None:
    tools, page = Caller(roles_url, "tools"), alice_page
    ml_run = tools.launched("ml", "probe_sleep", sleep_config(120))
    bakery_run = Caller(roles_url, "alice").launched("bakery", "probe_sleep", sleep_config(120))
    try:
        page.goto(f"{roles_url}/runs/{ml_run}")
        expect(page.get_by_role("button", name="Terminate")).to_be_disabled()
        page.screenshot(path=screenshots / "roles-member-other-team-run.png")

        page.goto(f"{roles_url}/runs/{bakery_run}")
        page.get_by_role("button", name="Terminate").click()
        page.get_by_role("dialog").get_by_role("button", name=re.compile("^Terminate")).click()
        assert client.wait_for_run(bakery_run) == "CANCELED"
    finally:
        for run_id in (ml_run, bakery_run):
            tools.graphql(
                "mutation T($id: String!) { terminateRun(runId: $id, "
                "terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) { __typename } }",
                {"id": run_id},
            )


def test_a_viewer_sees_everything_and_can_launch_nothing(
    vera_page: Page, roles_url: str, screenshots: Path
) -> None:
    page = vera_page
    for asset, team in (("ingredients", "bakery"), ("iris_table", "ml")):
        page.goto(f"{roles_url}/assets/{asset}")
        expect(page.locator(f'a[href="/locations/{team}/"]').first).to_be_visible()
        expect(page.locator("button", has_text=MATERIALIZE)).to_be_disabled()
    page.screenshot(path=screenshots / "roles-viewer-asset.png")
