"""A real Chromium, driven by Playwright, pointed at the local process stack, or at a stack
that is already up (containers: `make up`, or the container end-to-end test) when
UI_TEST_WEBSERVER_URL, UI_TEST_FLOWER_URL and UI_TEST_FLOWER_PASSWORD name it. The UI's login
(compose puts the webserver behind a proxy) comes from UI_TEST_WEBSERVER_USER (default admin)
and UI_TEST_WEBSERVER_PASSWORD, or from the URL itself: http://user:password@host:port."""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from devstack.config import PLATFORM_LOCATION
from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack
from tests.stack_helpers import wait_for_loaded_locations, wait_until_healthy
from tests.ui.browser import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    new_context,
)
from tests.ui.target import UiTarget

expect.set_options(timeout=ACTION_TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # Lets the page fixture know, at teardown, whether the test failed and so needs a screenshot.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver", pytrace=False
        )
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def ui_target(request: pytest.FixtureRequest) -> UiTarget:
    if url := os.environ.get("UI_TEST_WEBSERVER_URL"):
        login = None
        if password := os.environ.get("UI_TEST_WEBSERVER_PASSWORD"):
            login = (os.environ.get("UI_TEST_WEBSERVER_USER", "admin"), password)
        client = PlatformClient(url, login=login)
        # The client takes a login out of the URL: the browser gets it the same way.
        url = client.url
        login = (client.auth.username, client.auth.password) if client.auth else None
        # Every location but the platform's own is a team's.
        teams = sorted(set(client.locations()) - {PLATFORM_LOCATION})
        wait_for_loaded_locations(client, teams, timeout=180)
        flower = os.environ["UI_TEST_FLOWER_URL"]
        credentials = (
            os.environ.get("UI_TEST_FLOWER_USER", "admin"),
            os.environ["UI_TEST_FLOWER_PASSWORD"],
        )
        target = UiTarget(
            url, login, flower, credentials, teams, client, None, SCREENSHOTS / "running"
        )
    else:
        stack: LocalStack = request.getfixturevalue("local_stack")
        client = request.getfixturevalue("client")
        target = UiTarget(
            stack.webserver_url,
            None,
            stack.flower_url,
            stack.flower_credentials,
            stack.teams,
            client,
            stack,
            SCREENSHOTS,
        )
    # dagster.yaml's `nux: enabled: false`: no "Join the Dagster community" dialog covers the
    # first page (nothing dismisses it here; the first test clicks through that page).
    assert target.client.query("{ shouldShowNux }") == {"shouldShowNux": False}
    return target


@pytest.fixture(autouse=True)
def starts_from_a_healthy_target(ui_target: UiTarget) -> None:
    if ui_target.local_stack is not None:
        wait_until_healthy(ui_target.local_stack, ui_target.client)


@pytest.fixture(scope="session")
def screenshots(ui_target: UiTarget) -> Path:
    ui_target.screenshots.mkdir(parents=True, exist_ok=True)
    for old in ui_target.screenshots.glob("*.png"):
        old.unlink()
    return ui_target.screenshots


@pytest.fixture(scope="session")
def dagster_ui(ui_target: UiTarget) -> str:
    return ui_target.webserver_url


@pytest.fixture
def context(browser: Browser, ui_target: UiTarget) -> Iterator[BrowserContext]:
    options = {}
    if ui_target.webserver_login:
        user, password = ui_target.webserver_login
        # Sent to the UI's origin only, never to Flower, which has its own login.
        options["http_credentials"] = {
            "username": user,
            "password": password,
            "origin": ui_target.webserver_url,
        }
    with new_context(browser, **options) as context:
        yield context


@pytest.fixture
def page(
    context: BrowserContext, screenshots: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and not page.is_closed():
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        page.screenshot(path=screenshots / f"FAILED-{name}.png", full_page=True)
