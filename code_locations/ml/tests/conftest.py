import pytest

from ml.definitions import defs


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """Every test gets its own offline W&B cache, as on the shared volume."""
    monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(tmp_path / "artifact-cache"))
    monkeypatch.setenv("DAGSTER_WANDB_IO_SIGNING_KEY", "ml-tests-signing-key-0123456789abc")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    return tmp_path / "artifact-cache"


@pytest.fixture
def team_resources(offline_wandb):
    return defs().resources
