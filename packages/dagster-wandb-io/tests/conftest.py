from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from dagster_wandb_io.keys import generate_private_key, public_key_of, write_trust_file

TESTS_DIR = Path(__file__).parent
sys.path.insert(0, str(TESTS_DIR))

# Two teams: "tests" owns every entity the suite (and the seed guide's examples) publish to;
# "intruder" is the other team the attack tests sign as.
SIGNING_KEY = generate_private_key()
INTRUDER_KEY = generate_private_key()
TEST_ENTITIES = [
    "my_entity",
    "e",
    "team_a",
    "bakery",
    "ml",
    "bench",
    "stopteam",
    "entity",
    "env_entity",
]
TRUST_FILE = Path(tempfile.mkdtemp(prefix="dwio-trust-")) / "trusted-keys.json"
write_trust_file(
    TRUST_FILE,
    {
        "tests": (public_key_of(SIGNING_KEY), TEST_ENTITIES),
        "intruder": (public_key_of(INTRUDER_KEY), ["intruder"]),
    },
)

# Offline W&B everywhere; nothing may touch the network or the user's home.
_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_CONSOLE": "off",
    "WANDB_API_KEY": "dummy-api-key-" + "0" * 26,
    "WANDB_DISABLE_GIT": "true",
    "WANDB_DISABLE_CODE": "true",
    "DAGSTER_WANDB_IO_SIGNING_KEY": SIGNING_KEY,
    "DAGSTER_WANDB_IO_TRUSTED_KEYS": str(TRUST_FILE),
}


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "volume"
    base.mkdir()
    for key, value in _ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(base))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    return base


@pytest.fixture
def base_dir(wandb_env: Path) -> Path:
    return wandb_env


@pytest.fixture
def seed_run_config() -> dict:
    return {
        "resources": {"wandb_config": {"config": {"entity": "my_entity", "project": "my_project"}}}
    }


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("WANDB_SILENT", "true")


# ---- several hosts: a shared object store and index (shared_storage.py) -------------------


@pytest.fixture(scope="session")
def shared_servers(tmp_path_factory: pytest.TempPathFactory):
    from shared_storage import PostgresServer, SeaweedServer

    postgres = PostgresServer()
    store = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    postgres.start()
    try:
        store.start()
        yield postgres, store
    finally:
        store.stop()
        postgres.stop()


@pytest.fixture
def shared(shared_servers, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """What every host of one deployment shares, fresh for each test: a database for the index
    and a folder of the bucket; the environment points this process (and its children) at them."""
    import uuid

    import psycopg2

    from dagster_wandb_io.artifact_objects import STORE_URL_ENV
    from dagster_wandb_io.index_postgres import INDEX_URL_ENV

    from shared_storage import BUCKET

    postgres, store = shared_servers
    database = f"t_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(postgres.url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    connection.close()
    index_url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    store_url = f"s3://{BUCKET}/{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"
    for key, value in store.environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(STORE_URL_ENV, store_url)
    monkeypatch.setenv(INDEX_URL_ENV, index_url)
    return SharedStorage(store_url, index_url, store)


class SharedStorage:
    def __init__(self, store_url: str, index_url: str, server) -> None:
        self.store_url = store_url
        self.index_url = index_url
        self.server = server

    @property
    def settings(self) -> dict[str, str]:
        return {"store_url": self.store_url, "index_url": self.index_url}

    @property
    def prefix(self) -> str:
        return self.store_url.split("/", 3)[3]
