import os
import shutil

import pytest

from devstack.graphql_client import PlatformClient
from tests.stack_helpers import fresh_stack, loaded_client, wait_until_healthy


def pytest_collection_modifyitems(config, items):
    # `make test` runs the tests on the session's shared local stack apart from the others
    # (tests/ci/suites.py), telling them apart by this marker: their fixtures, not a label.
    # The browser suite's target is the shared stack unless it is pointed at a deployed one.
    for item in items:
        if {"local_stack", "ui_target"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared_stack)
    # CI sets REQUIRE_CONTAINER_TESTS=1, so a missing engine fails instead of skipping.
    if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
        return
    missing = {
        "container": None
        if shutil.which("docker") and os.environ.get("DOCKER_HOST")
        else "no container engine (set DOCKER_HOST, e.g. via containerlab)",
        # The swarm's two engines run in network namespaces, which only root creates.
        "swarm": None
        if shutil.which("dockerd") and shutil.which("podman") and os.geteuid() == 0
        else "a two-node swarm needs root, Debian's docker.io (dockerd) and podman's images",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def local_stack(request):
    """The platform as local processes, shared by every test of the session that needs it."""
    with fresh_stack("pytest", request.session) as stack:
        print(f"\nlocal stack healthy in {stack.startup_seconds:.1f}s: {stack.ready_seconds}")
        yield stack


@pytest.fixture(scope="session")
def client(local_stack) -> PlatformClient:
    return loaded_client(local_stack)


@pytest.fixture(autouse=True)
def starts_from_a_healthy_stack(request):
    if "local_stack" in request.fixturenames:
        wait_until_healthy(
            request.getfixturevalue("local_stack"), request.getfixturevalue("client")
        )
