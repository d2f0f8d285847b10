"""`make new-team`: a scaffolded team is registered everywhere and runs green untouched."""

import os
import re
import subprocess
import sys
import time

import pytest

import registry
from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack, StackSettings
from devstack.processes import wait_until
from registry import scaffold
from tests.repo import COMPOSE_SCHEMA, REPO_ROOT, copy_checkout
from tests.stack_helpers import STACK_START_SECONDS, stop_stack, wait_for_loaded_locations
from tests.terminate import wait_for_event

NEW_TEAM = "carrots"


def registry_command(checkout, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "registry", *args], cwd=checkout, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Carrots", "not a valid team name"),
        ("data_eng", "not a valid team name"),
        ("9lives", "not a valid team name"),
        ("x", "not a valid team name"),
        ("class", "reserved"),
        ("celery", "reserved"),
        ("json", "would shadow the installed module"),
        ("bakery", "already exists"),
        ("webserver", "reserved"),
        ("carrots\n", "not a valid team name"),
    ],
)
def test_bad_team_names_are_refused_with_the_reason(name, message):
    with pytest.raises(registry.RegistryError, match=message):
        scaffold.check_new_name(name, REPO_ROOT)


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    """A copy of the checkout with a new team scaffolded by the real command."""
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    started = time.monotonic()
    result = registry_command(checkout, "new", NEW_TEAM)
    assert result.returncode == 0, result.stderr
    print(f"\nmake new-team took {time.monotonic() - started:.1f}s: {result.stdout.strip()}")
    return checkout


def test_a_second_scaffold_of_the_same_name_changes_nothing(scaffolded):
    before = {
        name: (scaffolded / name).read_text() for name in ("docker-compose.yml", "workspace.yaml")
    }
    result = registry_command(scaffolded, "new", NEW_TEAM)
    assert result.returncode == 1 and "already exists" in result.stderr
    assert before == {name: (scaffolded / name).read_text() for name in before}


def test_scaffolded_checkout_passes_the_static_and_consistency_checks(scaffolded):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "tests/test_compose_static.py",
            "tests/test_consistency.py",
        ],
        cwd=scaffolded,
        env={**os.environ, "COMPOSE_SPEC_SCHEMA": str(COMPOSE_SCHEMA)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    # The consistency checks are parametrized per team, so the new team was checked too.
    assert "passed" in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/test_consistency.py"],
        cwd=scaffolded,
        capture_output=True,
        text=True,
    ).stdout
    assert f"[{NEW_TEAM}]" in listed


def test_scaffolded_team_passes_its_own_tests(scaffolded):
    team = scaffolded / "code_locations" / NEW_TEAM
    result = subprocess.run(
        [str(team / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "tests"],
        cwd=team,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


# A module of the team's that the test changes while the stack runs, then reloads.
CODE_MARK_MODULE = """
import dagster as dg

CODE_MARK = "first"


@dg.asset(group_name="code_mark")
def code_mark(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"code mark: {CODE_MARK}")


code_mark_job = dg.define_asset_job("code_mark_job", selection=[code_mark])
"""


def code_mark_of_a_new_run(client: PlatformClient) -> str:
    run_id = client.submit_job(NEW_TEAM, "code_mark_job")
    assert client.wait_for_run(run_id, timeout=240) == "SUCCESS"
    return wait_for_event(client, run_id, re.compile(r"code mark: (\w+)")).group(1)


@pytest.mark.local_stack
def test_scaffolded_teams_sample_job_runs_green_on_its_own_worker(scaffolded, request):
    code_mark = (
        scaffolded / "code_locations" / NEW_TEAM / "src" / NEW_TEAM / "defs" / "code_mark.py"
    )
    code_mark.write_text(CODE_MARK_MODULE)
    stack = LocalStack(
        StackSettings(
            name=f"newteam-{os.getpid()}",
            fresh=True,
            repo_root=scaffolded,
            teams=[NEW_TEAM],
            flower=False,
        )
    )
    stack.start(timeout=STACK_START_SECONDS)
    try:
        client = PlatformClient(stack.webserver_url)
        wait_for_loaded_locations(client, [NEW_TEAM])
        submitted = time.monotonic()
        run_id = client.submit_job(NEW_TEAM, "sample_job")
        assert client.wait_for_run(run_id, timeout=240) == "SUCCESS"
        print(
            f"\n{NEW_TEAM}: its stack healthy in {stack.startup_seconds:.1f}s, sample_job "
            f"SUCCESS {time.monotonic() - submitted:.1f}s after submit, with no edits"
        )
        workers = client.step_workers(run_id)
        assert set(workers) == {"raw_numbers", "squared_numbers"}
        assert all(worker.startswith(f"{NEW_TEAM}@") for worker in workers.values())

        # Fresh code after a Reload in the UI: the workers restart, and the next run runs (and
        # its step logs, on the step worker) the changed constant.
        assert code_mark_of_a_new_run(client) == "first"
        code_mark.write_text(CODE_MARK_MODULE.replace('"first"', '"second"'))
        workers_before = {worker.name: worker.pid for worker in stack.team_workers(NEW_TEAM)}
        reloaded = time.monotonic()
        client.reload_location(NEW_TEAM)
        wait_for_loaded_locations(client, [NEW_TEAM])

        def workers_restarted() -> bool:
            return all(
                worker.pid != workers_before[worker.name] and worker.is_ready()
                for worker in stack.team_workers(NEW_TEAM)
            )

        assert wait_until(workers_restarted, 120), "the Reload did not restart the workers"
        print(f"workers restarted {time.monotonic() - reloaded:.1f}s after the Reload")
        assert code_mark_of_a_new_run(client) == "second"
    finally:
        stop_stack(stack, request.session)
