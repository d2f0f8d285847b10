"""A worker process loads a team's definitions once, not once per step as dagster-celery does."""

import gc
import sys
import textwrap

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from dagster_team_celery.steps import step_task

TEAM_CODE = """
import dagster as dg

LOADS = []


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    return first + 1


@dg.definitions
def defs():
    LOADS.append(1)
    return dg.Definitions(
        assets=[first, second], jobs=[dg.define_asset_job("everything")]
    )
"""


@pytest.fixture
def team_module(tmp_path, monkeypatch):
    (tmp_path / "cached_team.py").write_text(textwrap.dedent(TEAM_CODE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(step_task, "_repositories", {})
    monkeypatch.setattr(step_task, "_jobs", {})
    yield ReconstructableRepository.for_module("cached_team", "defs", str(tmp_path))
    sys.modules.pop("cached_team", None)


def executable_dict(repository, **selection) -> dict:
    return ReconstructableJob(repository, "everything", **selection).to_dict()


def loads() -> int:
    return len(sys.modules["cached_team"].LOADS)


def test_steps_alternating_between_jobs_load_the_definitions_once(team_module):
    # Upstream keeps only the last job (lru_cache(maxsize=1)), so each switch reloads the code.
    whole = executable_dict(team_module)
    subset = executable_dict(team_module, asset_selection={dg.AssetKey("second")})
    definitions = [
        step_task.job_for(step).get_definition() for step in (whole, subset, whole, subset)
    ]

    assert definitions[0] is definitions[2] and definitions[1] is definitions[3]
    assert loads() == 1


def test_a_preloaded_repository_is_not_loaded_again_by_any_job_or_subset(team_module):
    step_task.warm_up_before_fork(team_module)
    whole = step_task.job_for(executable_dict(team_module)).get_definition()
    subset = step_task.job_for(
        executable_dict(team_module, asset_selection={dg.AssetKey("second")})
    ).get_definition()

    assert loads() == 1
    assert subset is not whole
    assert [node.name for node in subset.nodes] == ["second"]


def test_a_pointer_with_load_data_is_never_served_from_the_cache(team_module):
    with_load_data = team_module._replace(repository_load_data=object())
    assert step_task.repository_key(with_load_data) is None
    assert step_task.repository_key(team_module) is not None


def test_preloading_imports_what_steps_need_and_freezes_it_for_the_pool(team_module):
    try:
        step_task.warm_up_before_fork(team_module)
        assert all(name in sys.modules for name in step_task.STEP_MODULES)
        assert gc.get_freeze_count() > 0, "objects loaded before the fork must be frozen"
    finally:
        gc.unfreeze()
