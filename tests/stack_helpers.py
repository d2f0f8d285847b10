"""Starting and stopping local stacks for tests, and waiting for their code to load."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack, StackError, StackSettings
from devstack.processes import wait_until
from tests.repo import REPO_ROOT

# Hang guards, not speed targets (`make bench` times a start): `make test` starts several stacks
# and builds images at once on two cores, where one stack took 204 s to start.
STACK_START_SECONDS = 480
LOCATIONS_LOADED_SECONDS = 240


def start_stack(name: str, **settings) -> LocalStack:
    # Other suites read the checkout's team code at the same time (tests/ci/suites.py runs
    # them in parallel), so a test that breaks a team's code must break a copy.
    settings.setdefault("copy_team_code", True)
    stack = LocalStack(StackSettings(name=f"{name}-{os.getpid()}", fresh=True, **settings))
    try:
        stack.start(timeout=STACK_START_SECONDS)
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


@contextmanager
def fresh_stack(name: str, session: pytest.Session) -> Iterator[LocalStack]:
    """The stack a shared fixture holds for its scope (the session's in tests/conftest.py, the
    fault suite's in tests/faults/conftest.py): started fresh, stopped when the scope ends."""
    stack = start_stack(name)
    yield stack
    stop_stack(stack, session)


def loaded_client(stack: LocalStack) -> PlatformClient:
    """A client of the stack's webserver, once every team's code location has loaded."""
    client = PlatformClient(stack.webserver_url)
    wait_for_loaded_locations(client, stack.teams)
    return client


def wait_for_loaded_locations(
    client: PlatformClient, teams: list[str], timeout: float = LOCATIONS_LOADED_SECONDS
):
    try:
        return client.wait_for_locations(teams, timeout)
    except TimeoutError as error:
        pytest.fail(str(error))


def wait_until_healthy(stack: LocalStack, client: PlatformClient) -> None:
    """Every service ready and every location LOADED, so a test that left the shared stack
    half-restarted (a redeploy cut short, say) fails alone instead of failing the next ones."""
    services = stack.services.values()
    if not wait_until(lambda: all(service.is_ready() for service in services), 180):
        pytest.fail(f"local stack unhealthy: {[s.name for s in services if not s.is_ready()]}")
    wait_for_loaded_locations(client, stack.teams)


def object_store_client(stack: LocalStack, **credentials: str):
    """A boto3 client of the stack's object store, as the platform's processes reach it."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.object_store_url,
        region_name="us-east-1",
        **{
            "aws_access_key_id": stack.secrets["object_store_access_key_id"],
            "aws_secret_access_key": stack.secrets["object_store_secret_access_key"],
            **credentials,
        },
    )


def object_store_keys(stack: LocalStack, prefix: str) -> dict[str, int]:
    """Every object under `prefix` in the stack's bucket, with its size."""
    pages = (
        object_store_client(stack)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.settings.object_store_bucket, Prefix=prefix)
    )
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def large_output_crosses_steps(client: PlatformClient, team: str, size_mb: int) -> str:
    """Run probe_large_output: a step writes `size_mb` of random bytes, the next reads them
    back through wherever step outputs live; both record the bytes' SHA-256. Its run id."""
    run_id = client.submit_job(
        team,
        "probe_large_output",
        run_config={"ops": {"write_payload": {"config": {"size_mb": size_mb}}}},
    )
    assert client.wait_for_run(run_id, timeout=180) == "SUCCESS"
    metadata = client.output_metadata(run_id)
    assert metadata["write_payload"]["sha256"] == metadata["read_payload"]["sha256"]
    return run_id


def run_browser_suite(
    where: str,
    url: str,
    ui_password: str,
    flower_url: str,
    flower_password: str,
    people_password: str | None = None,
) -> None:
    """tests/ui, in Chromium, against a deployed platform reached through its login proxy; with
    ``people_password``, also as the people `make user` gave logins (tests/ui/
    test_ui_roles_browser.py), whose three tests skip otherwise."""
    started = time.monotonic()
    people = {"UI_TEST_PEOPLE_PASSWORD": people_password} if people_password else {}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/ui", "-m", "ui", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "UI_TEST_WEBSERVER_URL": url,
            "UI_TEST_WEBSERVER_PASSWORD": ui_password,
            "UI_TEST_FLOWER_URL": flower_url,
            "UI_TEST_FLOWER_PASSWORD": flower_password,
            **people,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"\nbrowser suite on {where} in {time.monotonic() - started:.0f}s: {summary}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    expected = "7 passed, 1 skipped" if people_password else "4 passed, 4 skipped"
    assert expected in summary, "only the code-breaking test (and without people, theirs) skip"
