"""Flower, the Celery monitor: its workers page behind basic auth shows one worker per team."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.ui.browser import new_context
from tests.ui.target import UiTarget

pytestmark = pytest.mark.ui


def test_flower_lists_every_team_worker_behind_its_login(
    browser: Browser, ui_target: UiTarget, screenshots: Path
) -> None:
    workers_url = f"{ui_target.flower_url}/workers"
    user, password = ui_target.flower_credentials

    # Without credentials the server answers with the challenge that makes a browser prompt
    # for a login (headless Chromium has nobody to prompt, so ask over its request API).
    with new_context(browser) as anonymous:
        challenge = anonymous.request.get(workers_url)
        assert challenge.status == 401
        assert challenge.headers.get("www-authenticate", "").startswith("Basic")

    with new_context(browser, http_credentials={"username": user, "password": "wrong"}) as wrong:
        page = wrong.new_page()
        response = page.goto(workers_url)
        assert response is not None and response.status == 401
        page.screenshot(path=screenshots / "flower-login-refused.png")

    with new_context(browser, http_credentials={"username": user, "password": password}) as admin:
        page = admin.new_page()
        response = page.goto(workers_url)
        assert response is not None and response.status == 200
        for team in ui_target.teams:
            worker = page.get_by_role("link", name=re.compile(rf"(^|\s){team}@\S+$"))
            # A redeployed team also has its old worker listed, offline: one online is the bar.
            online = page.get_by_role("row").filter(has=worker).filter(has_text="Online")
            expect(online.first).to_be_visible()
        page.screenshot(path=screenshots / "flower-workers.png")
