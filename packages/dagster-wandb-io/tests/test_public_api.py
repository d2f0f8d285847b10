"""The public API is `dagster_wandb_io.__all__`, and it covers what the README imports."""

import re
from pathlib import Path

import dagster_wandb_io

PACKAGE = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves():
    for name in dagster_wandb_io.__all__:
        assert getattr(dagster_wandb_io, name) is not None, name
    assert sorted(dir(dagster_wandb_io)) == sorted(dagster_wandb_io.__all__)


def test_no_module_declares_a_public_list_of_its_own():
    sources = (PACKAGE / "src" / "dagster_wandb_io").rglob("*.py")
    declaring = [p.name for p in sources if "__all__" in p.read_text() and p.name != "__init__.py"]
    assert declaring == []


def test_readme_imports_only_public_names():
    readme = (PACKAGE / "README.md").read_text()
    imported = set()
    for grouped, inline in re.findall(
        r"from dagster_wandb_io import (?:\(([^)]*)\)|([\w, ]+))", readme
    ):
        imported.update(n.strip() for n in (grouped or inline).split(",") if n.strip())
    assert imported, "the README has no `from dagster_wandb_io import` example"
    assert imported <= set(dagster_wandb_io.__all__)
