"""The UI's proxy image (docker/ui-proxy) on its own, in front of stand-in services: its
forward-auth mode against a sign-in service that answers as oauth2-proxy does, its refusals of
bad or hostile settings, its refusal of cross-site requests (in Chromium, from a page of another
site), and its reconnect to an upstream that came back at a new address.

Its basic-auth mode, with websockets, is tested in front of the real webserver in
test_container_e2e.py."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.local_stack import free_port
from scripts import ui_login
from tests.repo import REPO_ROOT

pytestmark = pytest.mark.container

IMAGE = f"mlp-ui-proxy-test:{os.getpid()}"
# What the platform's own tools sign in with, as `make env` writes it.
TOOL_LOGIN = ("admin", "the-tools-password")
PYTHON_IMAGE = "python:3.11-slim"

# Answers every request with the headers it was sent, so the test sees what passed the proxy.
ECHO_SERVER = """
import http.server, json
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(dict(self.headers)).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    do_POST = do_GET
http.server.ThreadingHTTPServer(("0.0.0.0", 3000), Echo).serve_forever()
"""

# A sign-in service in the manner of oauth2-proxy: /oauth2/auth answers 202 for a request with
# a valid session and a bare 401 otherwise; /oauth2/sign_in is its sign-in page. Like uvicorn,
# it refuses a check that asks it to upgrade to a websocket.
SIGN_IN_SERVICE = """
import http.server
class Auth(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/oauth2/sign_in"):
            status, body = 200, b"the sign-in page"
        elif self.headers.get("Upgrade"):
            status, body = 400, b"a check is no websocket"
        elif self.headers.get("Cookie") == "session=alice-session":
            status, body = 202, b""
        else:
            status, body = 401, b"not signed in"
        self.send_response(status); self.send_header("Content-Length", str(len(body)))
        if status == 202:  # who signed in, as oauth2-proxy --set-xauthrequest says it
            self.send_header("X-Auth-Request-User", "alice")
            self.send_header("X-Auth-Request-Groups", "bakery-engineers,readers")
        self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 4180), Auth).serve_forever()
"""


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


class ProxyLab:
    """A private network holding a proxy, an echoing upstream named `webserver`, and a
    sign-in service named `sign-in`."""

    def __init__(self, users_file: Path) -> None:
        self.network = f"mlp-ui-proxy-{os.getpid()}"
        self.containers: list[str] = []
        self.users_file = users_file

    def start(self, name: str, *args: str) -> str:
        container = f"{self.network}-{name}"
        docker("run", "-d", "--name", container, "--network", self.network, *args)
        self.containers.append(container)
        return container

    def start_python(self, name: str, alias: str, code: str) -> str:
        return self.start(name, "--network-alias", alias, PYTHON_IMAGE, "python", "-u", "-c", code)

    def start_proxy(self, name: str, **settings: str) -> str:
        port = free_port()
        environment = {"UI_UPSTREAM": "webserver:3000", **settings}
        options = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
        users = f"{self.users_file}:/etc/caddy/ui-users:ro"
        self.start(
            name,
            *("--read-only", "--tmpfs", "/tmp", "-v", users, "-p", f"127.0.0.1:{port}:8080"),
            *options,
            IMAGE,
        )
        return f"http://127.0.0.1:{port}"

    def remove(self, container: str) -> None:
        docker("rm", "-f", container, check=False)
        self.containers.remove(container)

    def close(self) -> None:
        for container in list(self.containers):
            self.remove(container)
        docker("network", "rm", "-f", self.network, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[ProxyLab]:
    docker("build", "-q", "-t", IMAGE, str(REPO_ROOT / "docker" / "ui-proxy"), timeout=600)
    users_file = tmp_path_factory.mktemp("ui") / "ui-users"
    ui_login.write_users_file(users_file, *TOOL_LOGIN)
    lab = ProxyLab(users_file)
    docker("network", "create", lab.network)
    try:
        lab.start_python("webserver", "webserver", ECHO_SERVER)
        lab.start_python("sign-in", "sign-in", SIGN_IN_SERVICE)
        yield lab
    finally:
        lab.close()
        docker("rmi", "-f", IMAGE, check=False)


def answered(url: str, timeout: float = 60, **request) -> requests.Response:
    """The first answer other than the proxy's own 502 while its upstreams start."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=5, allow_redirects=False, **request)
            if response.status_code != 502:
                return response
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def forward_proxy(lab: ProxyLab) -> str:
    return lab.start_proxy(
        "forward",
        UI_AUTH="forward",
        UI_FORWARD_AUTH_ADDRESS="http://sign-in:4180",
        UI_FORWARD_AUTH_URI="/oauth2/auth",
        UI_FORWARD_AUTH_PAGES="/oauth2/*",
        UI_FORWARD_AUTH_SIGN_IN="/oauth2/sign_in",
    )


SIGNED_IN = {"cookies": {"session": "alice-session"}}


def test_forward_auth_sends_a_visitor_without_a_session_to_the_sign_in_page(forward_proxy):
    response = answered(f"{forward_proxy}/runs?view=list")
    assert response.status_code == 302
    assert response.headers["Location"] == (f"/oauth2/sign_in?rd={forward_proxy}/runs?view=list")
    page = answered(f"{forward_proxy}{response.headers['Location']}")
    assert (page.status_code, page.text) == (200, "the sign-in page")


def test_forward_auth_lets_a_signed_in_visitor_through(forward_proxy):
    response = answered(f"{forward_proxy}/graphql", **SIGNED_IN)
    assert response.status_code == 200
    assert response.json()["Cookie"] == "session=alice-session"


def test_forward_auth_checks_a_websocket_upgrade_without_upgrading_the_check(forward_proxy):
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    response = answered(f"{forward_proxy}/graphql", headers=upgrade, **SIGNED_IN)
    # The echoing upstream answers plain HTTP; it got the upgrade, the check did not.
    assert response.status_code == 200, response.text
    assert response.json()["Upgrade"] == "websocket"
    assert answered(f"{forward_proxy}/graphql", headers=upgrade).status_code == 302


def test_forward_auth_lets_the_platforms_tools_in_with_the_ui_login_alone(forward_proxy):
    # `make up` and `make redeploy` reload code locations with UI_USER and UI_PASSWORD.
    response = answered(f"{forward_proxy}/graphql", auth=TOOL_LOGIN)
    assert response.status_code == 200
    assert "Authorization" not in response.json(), "the password is not passed on"
    wrong = answered(f"{forward_proxy}/graphql", auth=(TOOL_LOGIN[0], "wrong"))
    assert wrong.status_code == 401, "a wrong login is refused, not sent on to sign in"


# What a member of another team would send to pass for the platform's admin login.
FORGED = {"X-Platform-User": "admin", "X-Platform-Groups": "platform-admins"}


def test_the_webserver_learns_who_signed_in_from_the_sign_in_service_never_the_client(
    forward_proxy,
):
    """The roles' attack: the webserver gives each person's role to the user the proxy names
    (dagster_team_celery/ui_access); a visitor who could name themselves would be an admin."""
    seen = answered(f"{forward_proxy}/graphql", headers=FORGED, **SIGNED_IN).json()
    assert seen["X-Platform-User"] == "alice"
    assert seen["X-Platform-Groups"] == "bakery-engineers,readers"


def test_the_tools_login_is_named_by_the_proxy_and_carries_no_groups(forward_proxy):
    seen = answered(f"{forward_proxy}/graphql", headers=FORGED, auth=TOOL_LOGIN).json()
    assert seen["X-Platform-User"] == TOOL_LOGIN[0]
    assert "X-Platform-Groups" not in seen


def test_the_health_check_answers_without_a_session(forward_proxy):
    assert answered(f"{forward_proxy}/proxy-health").status_code == 200


def test_a_recreated_webserver_at_a_new_address_is_reached_without_restarting_the_proxy(
    lab, forward_proxy
):
    assert answered(f"{forward_proxy}/", **SIGNED_IN).status_code == 200
    old = next(c for c in lab.containers if c.endswith("-webserver"))
    address = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    before = docker("inspect", "--format", address, old).stdout.strip()
    lab.remove(old)
    # Holds the old address, so the new webserver gets another one.
    lab.start("filler", PYTHON_IMAGE, "sleep", "600")
    new = lab.start_python("webserver", "webserver", ECHO_SERVER)
    assert docker("inspect", "--format", address, new).stdout.strip() != before
    assert answered(f"{forward_proxy}/", **SIGNED_IN).status_code == 200


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"UI_AUTH": "forward"}, "UI_FORWARD_AUTH_ADDRESS"),
        ({"UI_AUTH": "ldap"}, "UI_AUTH='ldap' is not a sign-in method"),
        # The attack: a value that would close the block and add a directive of its own.
        (
            {
                "UI_AUTH": "forward",
                "UI_FORWARD_AUTH_ADDRESS": "http://sign-in:4180",
                "UI_FORWARD_AUTH_URI": "/ }\nrespond 200\n{",
            },
            "UI_FORWARD_AUTH_URI=",
        ),
        ({"UI_AUTH": "basic", "UI_UPSTREAM": "webserver:3000 {"}, "UI_UPSTREAM="),
    ],
)
def test_a_bad_sign_in_setting_stops_the_proxy_with_the_fix(lab, settings, named):
    settings = {"UI_UPSTREAM": "webserver:3000", **settings}
    environment = [arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")]
    container = f"{lab.network}-refused"
    # Not --rm: podman's API then reports exit code 0 for any container.
    result = docker("run", "--name", container, *environment, IMAGE, check=False, timeout=60)
    try:
        exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout
    finally:
        docker("rm", "-f", container, check=False)
    assert exit_code.strip() == "64"
    assert named in result.stderr and ".env" in result.stderr


# ---- cross-site request forgery (docker/ui-proxy/cross-site.caddy) ----

MUTATION = 'mutation { deleteRun(runId: "any") { __typename } }'
REFUSED_FROM_ANOTHER_SITE = "The UI's API refuses requests from pages of other sites."


@pytest.fixture(scope="module")
def basic_proxy(lab: ProxyLab) -> str:
    return lab.start_proxy("basic", UI_AUTH="basic")


def upstream_posts(lab: ProxyLab) -> int:
    """How many POSTs the stand-in webserver has been sent."""
    echo = next(c for c in lab.containers if c.endswith("-webserver"))
    logs = docker("logs", echo)
    return (logs.stdout + logs.stderr).count('"POST /')


@pytest.mark.parametrize("proxy", ["basic_proxy", "forward_proxy"])
def test_the_api_takes_json_posts_from_its_own_pages_and_the_platforms_tools(request, proxy):
    url = request.getfixturevalue(proxy)
    own_page = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    for headers in (own_page, {}):  # {}: `make up`'s requests send no Sec-Fetch-* headers
        answered(f"{url}/proxy-health")
        response = requests.post(
            f"{url}/graphql", json={"query": MUTATION}, headers=headers, auth=TOOL_LOGIN, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["Content-Type"] == "application/json"


API = "/graphql"
REPORT = "/report_asset_materialization/cakes"  # a POST endpoint of the webserver's besides the API
ONLY_JSON_POSTS = "only as a POST with a JSON body"
CROSS_SITE = {"Sec-Fetch-Site": "cross-site"}
WEBSOCKET = {**CROSS_SITE, "Upgrade": "websocket", "Connection": "Upgrade"}


@pytest.mark.parametrize(
    ("method", "path", "options", "status", "says"),
    [
        # The browser says another site's page sent it: refused whatever it carries.
        ("POST", API, {"json": {}, "headers": CROSS_SITE}, 403, REFUSED_FROM_ANOTHER_SITE),
        (
            "POST",
            API,
            {"json": {}, "headers": {"Sec-Fetch-Site": "same-site"}},
            403,
            REFUSED_FROM_ANOTHER_SITE,
        ),
        ("GET", API, {"headers": WEBSOCKET}, 403, REFUSED_FROM_ANOTHER_SITE),
        ("POST", REPORT, {"json": {}, "headers": CROSS_SITE}, 403, "The UI refuses changes"),
        # What a page of another site can send without the UI's consent, in any browser.
        ("GET", API, {"params": {"query": MUTATION}}, 405, ONLY_JSON_POSTS),
        ("POST", API, {"data": {"query": MUTATION}}, 415, ONLY_JSON_POSTS),
        (
            "POST",
            API,
            {"data": MUTATION, "headers": {"Content-Type": "text/plain"}},
            415,
            ONLY_JSON_POSTS,
        ),
    ],
    ids=[
        "cross-site",
        "same-site",
        "cross-site-websocket",
        "cross-site-report",
        "get-query",
        "form-post",
        "text-post",
    ],
)
def test_a_request_another_sites_page_could_send_is_refused_with_the_login(
    lab, basic_proxy, method, path, options, status, says
):
    answered(f"{basic_proxy}/proxy-health")
    before = upstream_posts(lab)
    response = requests.request(
        method, f"{basic_proxy}{path}", auth=TOOL_LOGIN, timeout=10, **options
    )
    assert (response.status_code, says in response.text) == (status, True), response.text
    assert upstream_posts(lab) == before, "the forged request reached the webserver"


def test_chromium_refuses_a_form_another_site_posts_to_the_api(lab, basic_proxy, tmp_path):
    """The attack as it happens: a signed-in user's browser opens a page of another site (here
    `localhost`, the proxy being `127.0.0.1`), which posts a form to the UI's API; the browser
    would attach the UI's login by itself."""
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS

    body = MUTATION.replace('"', "&quot;")
    (tmp_path / "index.html").write_text(
        f'<form id="forged" method="POST" action="{basic_proxy}/graphql" enctype="text/plain">'
        f'<input type="hidden" name="{body}" value=""></form>'
        "<script>document.getElementById('forged').submit()</script>"
    )
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    answered(f"{basic_proxy}/proxy-health")
    before = upstream_posts(lab)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            login = {"username": TOOL_LOGIN[0], "password": TOOL_LOGIN[1]}
            context = browser.new_context(http_credentials=login)
            page = context.new_page()
            with page.expect_response(f"{basic_proxy}/graphql") as forged:
                page.goto(f"http://localhost:{attacker.server_port}/index.html")
            assert forged.value.status == 403
            assert REFUSED_FROM_ANOTHER_SITE in forged.value.text()
            browser.close()
    finally:
        attacker.shutdown()
    assert upstream_posts(lab) == before, "the forged request reached the webserver"
