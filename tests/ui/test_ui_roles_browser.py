"""The UI's roles in Chromium: what a bakery member and a viewer can click, and what the UI
greys out for them. On the local stack, on a webserver with roles beside the stack's own
(devstack/roles_webserver.py), each person named by the header the login proxy would set; on a
deployed stack, each signs in through the proxy with their own login (`make user`, made by
test_container_e2e.py with UI_TEST_PEOPLE_PASSWORD)."""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from dagster_team_celery.ui_access.people import USER_HEADER
from devstack.roles_webserver import Caller, roles_webserver
from tests.terminate import SLEEPING, sleep_config, wait_for_event
from tests.ui.browser import MATERIALIZE, materialize_and_expect_success, new_context
from tests.ui.target import UiTarget

pytestmark = pytest.mark.ui

PEOPLE_PASSWORD = "UI_TEST_PEOPLE_PASSWORD"


@dataclass
class People:
    """Alice (a member of the bakery), Vera (a viewer) and the platform's tools (an admin)."""

    url: str
    password: str | None  # None: the local roles webserver, which takes the header
    tools_login: tuple[str, str] | None

    def caller(self, name: str) -> Caller:
        if self.password is None:
            return Caller(self.url, name)
        auth = self.tools_login if name == "tools" else (name, self.password)
        return Caller(self.url, "", auth=auth)

    @contextmanager
    def page(self, browser: Browser, name: str) -> Iterator[Page]:
        if self.password is None:
            options = {"extra_http_headers": {USER_HEADER: name}}
        else:
            login = {"username": name, "password": self.password, "origin": self.url}
            options = {"http_credentials": login}
        with new_context(browser, **options) as context:
            yield context.new_page()


def materialize_menu(page: Page):
    """The arrow beside Materialize: its menu has Wipe materializations and the other actions
    on the asset; the UI shows it only to whoever may launch the asset."""
    materialize = page.locator("button", has_text=MATERIALIZE)
    return materialize.locator("xpath=../following-sibling::span[1]/button")


@pytest.fixture(scope="module")
def people(ui_target: UiTarget, tmp_path_factory) -> Iterator[People]:
    if ui_target.local_stack is not None:
        folder = tmp_path_factory.mktemp("roles-ui")
        with roles_webserver(ui_target.local_stack, folder) as url:
            yield People(url, None, None)
    elif password := os.environ.get(PEOPLE_PASSWORD):
        yield People(ui_target.webserver_url, password, ui_target.webserver_login)
    else:
        pytest.skip(f"the deployed stack's people have no logins here ({PEOPLE_PASSWORD})")


@pytest.fixture
def roles_url(people: People) -> str:
    return people.url


@pytest.fixture
def alice_page(browser: Browser, people: People) -> Iterator[Page]:
    with people.page(browser, "alice") as page:
        yield page


@pytest.fixture
def vera_page(browser: Browser, people: People) -> Iterator[Page]:
    with people.page(browser, "vera") as page:
        yield page


def test_a_member_materializes_and_may_wipe_their_teams_asset_and_not_the_other_teams(
    alice_page: Page, roles_url: str, screenshots: Path
) -> None:
    page = alice_page
    page.goto(f"{roles_url}/assets/iris_table")
    expect(page.locator('a[href="/locations/ml/"]').first).to_be_visible()
    expect(page.locator("button", has_text=MATERIALIZE)).to_be_disabled()
    expect(materialize_menu(page)).to_have_count(0)  # no way to Wipe materializations
    page.screenshot(path=screenshots / "roles-member-other-team-asset.png")

    page.goto(f"{roles_url}/assets/ingredients")
    materialize_menu(page).click()
    expect(page.get_by_role("menuitem", name="Wipe materializations")).to_be_enabled()
    page.keyboard.press("Escape")
    materialize_and_expect_success(page)


def test_a_member_terminates_their_teams_run_and_cannot_the_other_teams(
    alice_page: Page, roles_url: str, people: People, ui_target: UiTarget, screenshots: Path
) -> None:
    tools, page, client = people.caller("tools"), alice_page, ui_target.client
    ml_run = tools.launched("ml", "probe_sleep", sleep_config(120))
    bakery_run = people.caller("alice").launched("bakery", "probe_sleep", sleep_config(120))
    wait_for_event(client, bakery_run, SLEEPING)  # started: Terminate then stops it
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
        expect(materialize_menu(page)).to_have_count(0)
    page.screenshot(path=screenshots / "roles-viewer-asset.png")
