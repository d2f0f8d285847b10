import os
import shutil
import time

import pytest

from devstack.client import PlatformClient
from devstack.stack import LocalStack, StackError, StackSettings


def pytest_collection_modifyitems(config, items):
    # CI sets REQUIRE_CONTAINER_TESTS=1, so a missing engine fails instead of skipping.
    if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
        return
    if shutil.which("docker") and os.environ.get("DOCKER_HOST"):
        return
    skip = pytest.mark.skip(reason="no container engine (set DOCKER_HOST, e.g. via containerlab)")
    for item in items:
        if "container" in item.keywords:
            item.add_marker(skip)


def start_stack(name: str, **settings) -> LocalStack:
    stack = LocalStack(StackSettings(name=f"{name}-{os.getpid()}", fresh=True, **settings))
    try:
        stack.start()
    except StackError as error:
        pytest.fail(f"local stack did not start: {error}", pytrace=False)
    return stack


def stop_stack(stack: LocalStack, session: pytest.Session) -> None:
    stack.stop()
    if session.testsfailed:
        print(f"\nlocal stack state kept for inspection: {stack.state}")
        for service in stack.services.values():
            print(f"--- {service.name} (last lines of {service.log_path}):\n{service.log_tail(15)}")
    else:
        shutil.rmtree(stack.state, ignore_errors=True)


def wait_for_loaded_locations(client: PlatformClient, teams: list[str], timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        statuses = client.locations()
        if all(team in statuses and statuses[team].healthy for team in teams):
            return statuses
        if time.monotonic() > deadline:
            pytest.fail(f"code locations not all LOADED after {timeout:.0f}s: {statuses}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def local_stack(request):
    """The platform as local processes, shared by every test of the session that needs it."""
    stack = start_stack("pytest")
    print(f"\nlocal stack healthy in {stack.startup_seconds:.1f}s: {stack.ready_seconds}")
    yield stack
    stop_stack(stack, request.session)


@pytest.fixture(scope="session")
def client(local_stack) -> PlatformClient:
    platform = PlatformClient(local_stack.webserver_url)
    wait_for_loaded_locations(platform, local_stack.teams)
    return platform
