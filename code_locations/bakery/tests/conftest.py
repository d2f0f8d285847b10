import pytest

from bakery.definitions import defs
from dagster_wandb_io.keys import signing_environment


@pytest.fixture(autouse=True)
def bakery_storage_root(tmp_path, monkeypatch):
    """Every test gets its own inbox, catalog, reports and offline W&B cache."""
    monkeypatch.setenv("BAKERY_STORAGE_DIR", str(tmp_path / "bakery"))
    monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(tmp_path / "artifact-cache"))
    keys = signing_environment(tmp_path, "bakery", ["bakery"])
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    return tmp_path / "bakery"


@pytest.fixture
def team_resources(bakery_storage_root):
    """The bakery's own resources, pointed at the test's folders."""
    return defs().resources
