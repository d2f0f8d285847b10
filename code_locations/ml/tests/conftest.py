import pytest

from dagster_wandb_io.keys import PRIVATE_KEY_ENV, TRUSTED_KEYS_ENV, provision_team_keys
from ml.definitions import defs


@pytest.fixture(autouse=True)
def team_keys(tmp_path, monkeypatch) -> dict[str, str]:
    """Two teams, as on the platform: ml signs as itself; a test that publishes as the
    bakery switches to the bakery's key (`bakery_key`)."""
    trust_file = tmp_path / "trusted-keys.json"
    keys = provision_team_keys(trust_file, {"ml": ["ml"], "bakery": ["bakery"]})
    monkeypatch.setenv(PRIVATE_KEY_ENV, keys["ml"])
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(trust_file))
    return keys


@pytest.fixture
def bakery_key(team_keys) -> str:
    return team_keys["bakery"]


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """Every test gets its own offline W&B cache, as on the shared volume."""
    monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(tmp_path / "artifact-cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    return tmp_path / "artifact-cache"


@pytest.fixture
def team_resources(offline_wandb):
    return defs().resources
