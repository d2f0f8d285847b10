"""The online path against an in-memory fake of W&B's cloud (the only fake in the suite)."""

import os
import shutil
from pathlib import Path

import pytest
import wandb
from dagster import AssetIn, AssetKey, Definitions, SourceAsset, asset

from dagster_wandb_io import (
    ArtifactNotFoundError,
    CacheCorruptionError,
    MissingApiKeyError,
    WandbArtifactsIOManager,
)
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.testing import ENTITY, PROJECT, FakeCloud, online_store, run_spec
from dagster_wandb_io.wandb_client import WandbCloudClient, WandbSdkClient

from fake_resource import FakeWandbResource
from helpers import CURRENT_FAKE, asset_metadata


@pytest.fixture
def fake() -> FakeCloud:
    cloud = FakeCloud()
    CURRENT_FAKE["cloud"] = cloud
    yield cloud
    CURRENT_FAKE.clear()


def _manager(**kw) -> WandbArtifactsIOManager:
    return WandbArtifactsIOManager(
        wandb_resource=FakeWandbResource(mode="online", api_key="k" * 40),
        entity=ENTITY,
        project=PROJECT,
        **kw,
    )


def _run(assets, manager=None):
    manager = manager or _manager()
    defs = Definitions(assets=assets, resources={"io": manager})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process()
    assert result.success
    return result


@asset(io_manager_key="io")
def model():
    return {"weights": list(range(1000))}


def _reader(seen, **cfg):
    @asset(
        name=f"reader_{len(seen)}",
        ins={
            "model": AssetIn(
                input_manager_key="io",
                metadata={"wandb_artifact_configuration": cfg} if cfg else None,
            )
        },
    )
    def reader(model):
        seen.setdefault("values", []).append(model)

    return reader


def test_protocol_is_satisfied():
    assert isinstance(FakeCloud(), WandbCloudClient)
    assert isinstance(WandbSdkClient(api_key="x", host="h", layout=None), WandbCloudClient)


def test_online_write_metadata_and_cached_read_downloads_nothing(fake, base_dir):
    result = _run([model])
    meta = asset_metadata(result, "model")
    assert meta["wandb_mode"] == "online"
    assert meta["wandb_artifact_id"].startswith("fake-id-")
    assert meta["wandb_artifact_url"].endswith("/artifacts/artifact/model/v0")
    assert meta["wandb_run_url"].endswith(f"/runs/{result.run_id}")
    assert fake.logged_by == [result.run_id]

    seen = {}
    _run([model.to_source_asset(), _reader(seen)])
    assert seen["values"] == [{"weights": list(range(1000))}]
    assert fake.bytes_downloaded == 0  # digest already in the shared cache
    assert fake.used and fake.used[0][1] == "model:v0"  # lineage recorded


def test_online_read_fetches_once_then_hits_cache(fake, base_dir):
    _run([model])
    shutil.rmtree(base_dir / "dagster_wandb_io" / "cache")
    seen = {}
    _run([model.to_source_asset(), _reader(seen)])
    assert sorted(fake.downloads) == ["output.pickle", "output.pickle.sig"]
    first = fake.bytes_downloaded
    assert first > 0
    _run([model.to_source_asset(), _reader(seen)])
    assert fake.bytes_downloaded == first
    assert seen["values"][0] == seen["values"][1]


def test_corrupt_cache_entry_is_fetched_again_online(fake, base_dir):
    result = _run([model])
    payload = Path(asset_metadata(result, "model")["wandb_cache_path"]) / "files" / "output.pickle"
    data = bytearray(payload.read_bytes())
    data[-30] ^= 0xFF
    os.chmod(payload, 0o644)
    payload.write_bytes(bytes(data))
    seen = {}
    _run([model.to_source_asset(), _reader(seen)])
    assert seen["values"] == [{"weights": list(range(1000))}]
    assert fake.downloads == ["output.pickle"]


def test_corrupt_cache_entry_offline_raises_clear_error(fake, base_dir, monkeypatch):
    result = _run([model])
    payload = Path(asset_metadata(result, "model")["wandb_cache_path"]) / "files" / "output.pickle"
    os.chmod(payload, 0o644)
    payload.write_bytes(b"x" + payload.read_bytes()[1:])
    from dagster_wandb_io.testing import offline_store

    # The online write was not indexed offline; index it as an offline write would.
    store = offline_store(base_dir)
    store.index.record(
        ENTITY,
        PROJECT,
        "model",
        digest=asset_metadata(result, "model")["wandb_artifact_digest"],
        type="artifact",
        size=1,
        aliases=["latest"],
        signer=store.signer(required=True),
        trust=store.trust,
    )
    with pytest.raises(CacheCorruptionError, match=r"cannot be fetched again offline.*--digest"):
        store.read("model", Selection())


def test_corrupt_download_retried_then_reported(fake, base_dir):
    _run([model])
    shutil.rmtree(base_dir / "dagster_wandb_io" / "cache")
    fake.corrupt_downloads = 1
    seen = {}
    _run([model.to_source_asset(), _reader(seen)])  # one bad download, retried
    assert seen["values"]
    shutil.rmtree(base_dir / "dagster_wandb_io" / "cache")
    fake.corrupt_downloads = 2
    with pytest.raises(Exception, match="MD5 does not match"):
        _run([model.to_source_asset(), _reader(seen)])


def test_get_path_fetches_only_that_file(fake, base_dir, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200_000))
    small = tmp_path / "small.txt"
    small.write_text("hello")

    @asset(name="files", io_manager_key="io")
    def files():
        a = wandb.Artifact("files", "dataset")
        a.add_file(str(big), name="big.bin")
        a.add_file(str(small), name="small.txt")
        return a

    _run([files])
    shutil.rmtree(base_dir / "dagster_wandb_io" / "cache")
    seen = {}

    @asset(
        ins={
            "files": AssetIn(
                input_manager_key="io",
                metadata={"wandb_artifact_configuration": {"get_path": "small.txt"}},
            )
        }
    )
    def read_small(files):
        seen["text"] = Path(files).read_text()

    _run([files.to_source_asset(), read_small])
    assert seen["text"] == "hello"
    assert fake.downloads == ["small.txt"]

    @asset(ins={"files": AssetIn(input_manager_key="io")})
    def read_all(files):
        seen["artifact"] = files
        seen["dir"] = files.download()

    _run([files.to_source_asset(), read_all])
    assert sorted(fake.downloads) == ["big.bin", "small.txt"]
    art = seen["artifact"]
    assert art.name == "files:v0" and art.type == "dataset"
    assert (Path(seen["dir"]) / "big.bin").read_bytes() == big.read_bytes()
    # Online, unknown attributes are delegated to the real artifact object.
    assert art.wandb_artifact is not None and art.digest == art.wandb_artifact.digest


def test_source_asset_reads_artifact_made_outside_dagster(fake, base_dir):
    # Logged directly to W&B (not through this package): a table.
    external = wandb.Artifact("external_table", "dataset")
    external.add(wandb.Table(columns=["a"], data=[[1], [2]]), "rows")
    fake.log_artifact(run_spec("outside"), external, ["latest"])

    ext = SourceAsset(key=AssetKey("external_table"), io_manager_key="io")
    seen = {}

    @asset
    def use(external_table):
        seen["rows"] = external_table.get("rows").get_column("a")

    _run([ext, use])
    assert seen["rows"] == [1, 2]


def test_not_found_online_lists_existing_names(fake):
    _run([model])
    ghost = SourceAsset(key=AssetKey("ghost"), io_manager_key="io")

    @asset
    def use(ghost):
        return None

    with pytest.raises(
        ArtifactNotFoundError, match=r"ghost:latest was not found in W&B.*\[model\]"
    ):
        _run([ghost, use])


def test_missing_api_key_online(fake, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY")
    manager = WandbArtifactsIOManager(
        wandb_resource=FakeWandbResource(mode="online"), entity=ENTITY, project=PROJECT
    )
    with pytest.raises(MissingApiKeyError, match=r"WANDB_API_KEY.*WANDB_MODE=offline"):
        _run([model], manager)


def test_store_level_online_round_trip_counts(fake, base_dir):
    writer = online_store(base_dir, fake)
    res = writer.write(b"x" * 100_000, name="blob", config=WriteConfig(), run=run_spec())
    assert res.version == "v0" and not res.offline
    reader = online_store(base_dir, fake)
    assert reader.read("blob", Selection(version="v0")) == b"x" * 100_000
    assert reader.stats.bytes_downloaded == 0


def test_online_store_knows_what_a_run_already_published(fake, base_dir):
    store = online_store(base_dir, fake)
    this_run, other_run = run_spec(), run_spec("5e0f3c1a-0000-4000-8000-000000000000")
    assert store.published_in_run("model", this_run) is None

    written = store.write({"w": 1}, name="model", config=WriteConfig(), run=this_run)
    again = store.published_in_run("model", this_run)

    assert again is not None
    assert (again.version, again.digest, again.id) == (written.version, written.digest, written.id)
    assert store.published_in_run("model", other_run) is None
