"""Bad platform configuration is refused before anything starts, naming the file, the entry and
the fix; a running stack's state is never touched on the way."""

import subprocess
import sys
from pathlib import Path

import pytest

from devstack import config_check
from devstack.local_stack import LocalStack, StackError, StackSettings
from tests.repo import INSTANCE_YAML, REPO_ROOT, WORKSPACE_YAML

pytestmark = pytest.mark.faults

CHECKER = REPO_ROOT / "devstack" / "config_check.py"


@pytest.fixture
def home(tmp_path) -> Path:
    for source in (INSTANCE_YAML, WORKSPACE_YAML):
        (tmp_path / source.name).write_text(source.read_text())
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def problems(home: Path, **environment) -> str:
    with pytest.raises(config_check.ConfigProblem) as refused:
        config_check.check(home, environment or None)
    return str(refused.value)


def test_the_shipped_files_pass(home):
    config_check.check(home)


def test_broken_yaml_syntax_names_the_file_and_the_line(home):
    edit(home / "dagster.yaml", "  postgres:\n", "  postgres: [\n")
    message = problems(home)
    assert "dagster.yaml is not valid YAML at line" in message
    assert "Fix the syntax there" in message


def test_misspelled_instance_entry_is_named_with_the_valid_ones(home):
    edit(home / "dagster.yaml", "telemetry:", "telemetery:")
    message = problems(home)
    assert 'unexpected config entry "telemetery"' in message
    assert "valid top-level entries are" in message and "telemetry" in message
    assert len(message) < 1500, "the whole schema must not bury the answer"


def test_bad_value_in_a_classes_config_names_the_entry(home):
    edit(home / "dagster.yaml", "dequeue_interval_seconds: 1", "dequeue_interval_seconds: soon")
    message = problems(home)
    assert "run_coordinator (QueuedRunCoordinator)" in message
    assert "dequeue_interval_seconds" in message and "Fix `run_coordinator.config`" in message


def test_unknown_run_launcher_module_says_where_to_add_it(home):
    edit(
        home / "dagster.yaml",
        "module: dagster_team_celery.runs.isolation",
        "module: dagster_team_celery.run_isolaton",
    )
    message = problems(home)
    assert (
        "run_launcher names class 'RunLauncherByIsolation' in module "
        "'dagster_team_celery.run_isolaton'" in message
    )
    assert "pyproject.toml" in message


def test_unset_environment_variable_is_named_with_make_env(home):
    environment = {
        name: "set"
        for name in (
            "DAGSTER_POSTGRES_HOST",
            "DAGSTER_POSTGRES_PORT",
            "DAGSTER_POSTGRES_USER",
            "DAGSTER_POSTGRES_DB",
            "DAGSTER_STORAGE_DIR",
            "DAGSTER_COMPUTE_LOGS_DIR",
            "DAGSTER_OBJECT_STORE_BUCKET",
        )
    }
    message = problems(home, **environment)
    assert "reads DAGSTER_POSTGRES_PASSWORD from the environment, but it is not set" in message
    assert "make env" in message
    config_check.check(home, {**environment, "DAGSTER_POSTGRES_PASSWORD": "secret"})


def test_workspace_entry_errors_are_named(home):
    edit(home / "workspace.yaml", "port: 4000", "port: four")
    assert "grpc_server:port" in problems(home)


def test_duplicate_team_in_the_workspace_is_refused(home):
    edit(home / "workspace.yaml", "location_name: ml", "location_name: bakery")
    assert "bakery appear more than once" in problems(home)


def test_the_image_entry_point_exits_non_zero_with_the_problems(home):
    edit(home / "workspace.yaml", "location_name: ml", "location_name: bakery")
    result = subprocess.run(
        [sys.executable, CHECKER, home], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "nothing was started" in result.stdout and "more than once" in result.stdout


def test_local_stack_refuses_a_bad_config_before_touching_its_state(home, tmp_path):
    edit(home / "dagster.yaml", "telemetry:", "telemetery:")
    state = tmp_path / "state"
    kept = state / "dev" / "postgres" / "PG_VERSION"
    kept.parent.mkdir(parents=True)
    kept.write_text("15")
    stack = LocalStack(
        StackSettings(name="dev", state_root=state, repo_root=home, teams=["bakery"], fresh=True)
    )
    with pytest.raises(StackError, match="telemetery"):
        stack.start()
    assert kept.read_text() == "15", "a refused start must not wipe the stack's data"
    assert not stack.services
