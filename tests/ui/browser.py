"""How the UI tests drive Chromium: which binary, which flags, how long to wait."""

from pathlib import Path

from playwright.sync_api import Browser, BrowserContext

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
