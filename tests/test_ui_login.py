"""The UI login as the host's tools and `make env` handle it: the login a deploy script sends,
its error when the proxy refuses it, and the settings `make env` refuses before hashing."""

import http.server
import json
import threading
import urllib.error
from collections.abc import Iterator

import pytest

from scripts import make_env, ui_login, webserver
from tests.repo import REPO_ROOT


class RefusingProxy(http.server.BaseHTTPRequestHandler):
    """Answers as the UI's proxy does to a wrong login; remembers what it was sent."""

    seen: list[str | None] = []

    def do_POST(self) -> None:
        RefusingProxy.seen.append(self.headers.get("Authorization"))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="restricted"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stand-in for the UI's proxy on a free loopback port, for the length of a test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def refusing_proxy() -> Iterator[str]:
    yield from serve(RefusingProxy)


def test_a_refused_login_names_the_settings_and_the_fix(refusing_proxy, monkeypatch):
    monkeypatch.setenv("UI_USER", "operator")
    monkeypatch.setenv("UI_PASSWORD", "stale")
    with pytest.raises(RuntimeError, match=r"refused UI_USER/UI_PASSWORD.*compose restart ui"):
        webserver.reload_workspace(refusing_proxy)
    assert (
        RefusingProxy.seen[-1] == ui_login.basic_auth_header("operator", "stale")["Authorization"]
    )


class NewWebserverProxy(http.server.BaseHTTPRequestHandler):
    """Answers as the UI's proxy does just after the webserver was recreated: Bad Gateway until
    it follows the new container, then the webserver's answer."""

    bad_gateways_left = 0

    def do_POST(self) -> None:
        if NewWebserverProxy.bad_gateways_left > 0:
            NewWebserverProxy.bad_gateways_left -= 1
            body, status = b"", 502
        else:
            entries = [{"name": "bakery", "loadStatus": "LOADED", "locationOrLoadError": {}}]
            body = json.dumps({"data": {"reloadWorkspace": {"locationEntries": entries}}})
            body, status = body.encode(), 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def new_webserver_proxy() -> Iterator[str]:
    yield from serve(NewWebserverProxy)


def test_a_webserver_not_yet_reached_through_the_proxy_is_waited_for(new_webserver_proxy):
    NewWebserverProxy.bad_gateways_left = 2
    assert webserver.reload_workspace(new_webserver_proxy) == {"bakery": None}
    assert NewWebserverProxy.bad_gateways_left == 0


def test_a_proxy_that_stays_a_bad_gateway_is_reported(new_webserver_proxy, monkeypatch):
    monkeypatch.setattr(webserver, "GATEWAY_WAIT_SECONDS", 1.5)
    NewWebserverProxy.bad_gateways_left = 1000
    with pytest.raises(urllib.error.HTTPError, match="502"):
        webserver.reload_workspace(new_webserver_proxy)


def test_a_password_bcrypt_would_cut_is_refused(tmp_path):
    with pytest.raises(ValueError, match="longer than bcrypt's 72 bytes"):
        ui_login.write_users_file(tmp_path / "ui-users", "admin", "x" * 73)
    assert not (tmp_path / "ui-users").exists()


def test_an_env_file_naming_the_retired_trusted_keys_file_names_its_replacement(tmp_path):
    env = tmp_path / ".env"
    env.write_text("TRUSTED_KEYS_FILE=/somewhere/trusted-keys.json\n")
    with pytest.raises(ValueError, match=r"TRUSTED_KEYS_FILE.*KEYS_DIR"):
        make_env.main(env, REPO_ROOT / ".env.example", tmp_path / "trusted-keys.json")


def test_a_relative_keys_dir_is_the_project_folder_s_as_compose_reads_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text("KEYS_DIR=keys\n")
    assert make_env.trust_file_of(env, tmp_path / "unused") == (
        REPO_ROOT / "keys" / "trusted-keys.json"
    )
