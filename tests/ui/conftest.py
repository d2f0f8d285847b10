"""A real Chromium, driven by Playwright, pointed at the local process stack."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from devstack.client import PlatformClient
from devstack.stack import LocalStack
from tests.ui.browser import (
    ACTION_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    new_context,
)

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
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def dagster_ui(local_stack: LocalStack, client: PlatformClient) -> str:
    """The webserver's URL, once every team's code location has loaded."""
    # The "Join the Dagster community" dialog covers the page on 127.0.0.1 until dismissed;
    # this is the mutation its Skip button sends.
    client.query("mutation { setNuxSeen }")
    return local_stack.webserver_url


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    with new_context(browser) as context:
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
