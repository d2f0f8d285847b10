"""The Dagster UI, checked the way a person uses it: pages, buttons and what they show.

Selectors follow what is on screen (text, roles, links) rather than the UI's hashed CSS class
names. Where the UI renders no role, the few structural hooks used are named where used.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from devstack.config import PLATFORM_LOCATION
from devstack.graphql_client import PlatformClient
from tests.stack_helpers import wait_for_loaded_locations
from tests.ui.browser import materialize_and_expect_success
from tests.ui.target import UiTarget

pytestmark = pytest.mark.ui

# A cross-team edge, as (team, asset): the ML team's forecast reads the bakery's cakes.
UPSTREAM = ("bakery", "baked_cakes")
DOWNSTREAM = ("ml", "cake_demand_forecast")
# The bakery's root asset: materializing it needs nothing upstream.
ASSET_TO_MATERIALIZE = ("bakery", "ingredients")
BROKEN_TEAM = "ml"
BROKEN_MODULE = "src/ml/defs/zz_broken_for_ui_test.py"  # in the stack's copy of the team's code
BROKEN_MESSAGE = "ml code is broken on purpose by the UI test"
# A reload restarts the team's code server process: under a minute on two busy cores; allow
# three (a run's timeout is browser.py's).
RELOAD_TIMEOUT_MS = 180_000

ASSET_LOCATION_QUERY = """
query AssetLocation($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode { repository { location { name } } }
  }
}
"""


def location_row(page: Page, location: str) -> Locator:
    # The code locations table is virtualized divs, not <tr>: a row is a [data-index] element.
    return page.locator("[data-index]").filter(
        has=page.locator(f'a[href="/locations/{location}/"]')
    )


def asset_location(client: PlatformClient, asset: str) -> str | None:
    node = client.query(ASSET_LOCATION_QUERY, {"key": {"path": [asset]}})["assetNodeOrError"]
    return node["repository"]["location"]["name"] if node["__typename"] == "AssetNode" else None


def test_deployment_page_lists_every_team_location_as_loaded(
    page: Page, dagster_ui: str, ui_target: UiTarget, screenshots: Path
) -> None:
    page.goto(dagster_ui)
    page.get_by_role("link", name="Deployment").click()
    expect(page.get_by_text("Join the Dagster community")).to_have_count(0)
    locations_tab = page.get_by_role("tab", name="Code locations")
    locations_tab.click()
    expect(locations_tab).to_have_attribute("aria-selected", "true")
    # Every team's, and the platform's own (cache eviction).
    locations = [*ui_target.teams, PLATFORM_LOCATION]
    expect(page.get_by_text(f"{len(locations)} code locations")).to_be_visible()
    for location in locations:
        expect(location_row(page, location)).to_contain_text("Loaded")
    page.screenshot(path=screenshots / "code-locations.png")


def test_global_lineage_shows_the_bakery_to_ml_edge(
    page: Page, dagster_ui: str, ui_target: UiTarget, screenshots: Path
) -> None:
    (upstream_team, upstream), (downstream_team, downstream) = UPSTREAM, DOWNSTREAM
    assert asset_location(ui_target.client, upstream) == upstream_team
    assert asset_location(ui_target.client, downstream) == downstream_team

    # Only these two assets: any edge drawn is one between them (neighbours outside the
    # selection are hidden by default).
    selection = f'key:"{upstream}" or key:"{downstream}"'
    page.goto(f"{dagster_ui}/asset-groups~{quote(selection, safe='')}/")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    graph = page.locator("svg:has(foreignObject)")
    expect(graph).to_be_visible()
    expect(graph.locator("foreignObject").first).to_be_visible()
    upstream_node = graph.locator(f'[data-tooltip="{upstream}"]')
    downstream_node = graph.locator(f'[data-tooltip="{downstream}"]')
    # Assets of several groups start collapsed into their groups; the "Expand all groups"
    # shortcut (a toggle, hence the check) shows the assets themselves. The browser keeps
    # that choice, and a reload lays the expanded graph out to fit the view.
    if not downstream_node.is_visible():
        page.keyboard.press("Alt+E")
        expect(downstream_node).to_be_visible()
        page.reload()
    expect(upstream_node).to_be_visible()
    expect(downstream_node).to_be_visible()
    expect(graph.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    # Edges are the stroked paths; the arrow-head markers carry no stroke of their own.
    expect(graph.locator("path[stroke]").first).to_be_attached()
    upstream_box, downstream_box = upstream_node.bounding_box(), downstream_node.bounding_box()
    assert upstream_box and downstream_box, "both asset nodes are on screen"
    assert upstream_box["x"] < downstream_box["x"], "lineage flows left to right"
    page.screenshot(path=screenshots / "asset-lineage.png")

    # The downstream asset's own page names its team and the other team's asset upstream.
    page.goto(f"{dagster_ui}/assets/{downstream}")
    expect(page.locator(f'a[href="/locations/{downstream_team}/"]').first).to_be_visible()
    expect(page.locator(f'a[href="/assets/{upstream}"]').first).to_be_visible()
    page.screenshot(path=screenshots / "asset-upstream-across-teams.png")


def test_materialize_button_runs_the_asset_on_the_teams_celery_worker(
    page: Page, dagster_ui: str, screenshots: Path
) -> None:
    team, asset = ASSET_TO_MATERIALIZE
    page.goto(f"{dagster_ui}/assets/{asset}")
    expect(page.locator(f'a[href="/locations/{team}/"]').first).to_be_visible()
    materialize_and_expect_success(page)
    page.get_by_placeholder(re.compile(r"^Filter")).fill("in celery worker")
    expect(page.get_by_text(f"Executing steps {asset} in celery worker")).to_be_visible()
    worker_row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="Celery worker", exact=True)
    )
    expect(worker_row.get_by_role("cell").nth(1)).to_have_text(re.compile(rf"^{team}@\S+$"))
    page.screenshot(path=screenshots / "run-on-team-worker.png")


@pytest.fixture
def broken_module_removed_afterwards(ui_target: UiTarget) -> Iterator[Path]:
    """Whatever happens, the broken module goes and every location is loaded again after."""
    if ui_target.local_stack is None:
        pytest.skip("breaks a team's code, which only a local stack serves from a folder")
    module = ui_target.local_stack.team_code_dir(BROKEN_TEAM) / BROKEN_MODULE
    client = ui_target.client
    try:
        yield module
    finally:
        module.unlink(missing_ok=True)
        if not client.locations()[BROKEN_TEAM].healthy:
            client.reload_location(BROKEN_TEAM)
        wait_for_loaded_locations(client, ui_target.teams, timeout=RELOAD_TIMEOUT_MS / 1000)


def dismiss_the_reloads_own_error_dialog(page: Page) -> None:
    """The Reload button opens its own error dialog (Reload again / Dismiss) when its reload
    call comes back failed, which may be before or after the row shows Failed. Its overlay
    covers the row, so it has to go before the row's View error can be clicked."""
    own_dialog = page.get_by_role("dialog").filter(has=page.get_by_role("button", name="Dismiss"))
    try:
        own_dialog.wait_for(state="visible", timeout=5_000)
    except PlaywrightTimeoutError:
        return
    expect(own_dialog).to_contain_text(f"RuntimeError: {BROKEN_MESSAGE}")
    own_dialog.get_by_role("button", name="Dismiss").click()
    expect(own_dialog).to_be_hidden()


def test_a_team_whose_code_fails_to_import_shows_the_error_and_reload_recovers(
    page: Page,
    dagster_ui: str,
    ui_target: UiTarget,
    screenshots: Path,
    broken_module_removed_afterwards: Path,
) -> None:
    other_teams = [team for team in ui_target.teams if team != BROKEN_TEAM]
    page.goto(f"{dagster_ui}/locations")
    broken_row = location_row(page, BROKEN_TEAM)
    expect(broken_row).to_contain_text("Loaded")

    # The team's code is installed editable, so its code server imports this on reload.
    broken_module_removed_afterwards.write_text(f"raise RuntimeError({BROKEN_MESSAGE!r})\n")
    broken_row.get_by_role("button", name="Reload").click()
    expect(broken_row).to_contain_text("Failed", timeout=RELOAD_TIMEOUT_MS)
    for team in other_teams:
        expect(location_row(page, team)).to_contain_text("Loaded")
    page.screenshot(path=screenshots / "code-location-failed.png")
    dismiss_the_reloads_own_error_dialog(page)

    broken_row.get_by_role("button", name="View error").click()
    error_dialog = page.get_by_role("dialog")
    expect(error_dialog).to_contain_text("Code location error")
    expect(error_dialog).to_contain_text(f"RuntimeError: {BROKEN_MESSAGE}")
    page.screenshot(path=screenshots / "code-location-error.png")
    error_dialog.get_by_role("button", name="Close").click()
    expect(error_dialog).to_be_hidden()

    broken_module_removed_afterwards.unlink()
    broken_row.get_by_role("button", name="Reload").click()
    expect(broken_row).to_contain_text("Loaded", timeout=RELOAD_TIMEOUT_MS)
    for team in other_teams:
        expect(location_row(page, team)).to_contain_text("Loaded")
    page.screenshot(path=screenshots / "code-location-reloaded.png")
