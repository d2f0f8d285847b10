"""How the UI tests drive Chromium: which binary, which flags, how long to wait."""

import re
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-results" / "ui"
# Debian's Chromium (`apt-get install chromium chromium-driver`): Playwright's own browser
# download is not available here, and `.ci/run` installs the Debian package.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 900}
# Two busy cores: a page's first render can take 10 s and a code location reload 45 s.
ACTION_TIMEOUT_MS = 60_000
NAVIGATION_TIMEOUT_MS = 90_000


def new_context(browser: Browser, **options) -> BrowserContext:
    """A fresh browser profile, so no UI state (expanded groups, filters) leaks between tests."""
    context = browser.new_context(viewport=VIEWPORT, **options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    return context


# A run waits for the daemon's queue, a run process and a Celery worker: under a minute on two
# busy cores; allow three.
RUN_TIMEOUT_MS = 180_000
MATERIALIZE = re.compile(r"^Materialize$")


def materialize_and_expect_success(page: Page) -> None:
    """Click the asset page's Materialize, open the run it launched, wait for it to end."""
    page.locator("button", has_text=MATERIALIZE).click()
    expect(page.get_by_text("Launched run")).to_be_visible()
    page.get_by_role("link", name="View", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    # Wait for any final status, so a failed run fails the test now, not at the timeout.
    final_status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(final_status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(final_status).to_have_text("Success")
