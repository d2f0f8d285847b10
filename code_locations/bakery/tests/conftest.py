import pytest


@pytest.fixture(autouse=True)
def bakery_storage_root(tmp_path, monkeypatch):
    """Every test gets its own inbox, catalog and reports folders."""
    monkeypatch.setenv("BAKERY_STORAGE_DIR", str(tmp_path / "bakery"))
    return tmp_path / "bakery"
