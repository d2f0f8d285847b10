"""The launch client's calls into wandb's public launch API, and resource details."""

import inspect
import json
import os
from pathlib import Path

import pytest
import wandb.sdk.launch as wandb_launch
from dagster import job, make_values_resource

from dagster_wandb_io import (
    ConfigurationError,
    MissingApiKeyError,
    WandbResource,
    wandb_resource,
)
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.errors import OfflineUnavailableError
from dagster_wandb_io.launch.ops import WandbLaunchClient, launch_add_kwargs, run_launch_job
from dagster_wandb_io.testing import FakeCloud, offline_store, run_spec


def test_launch_client_calls_public_launch_add_with_credentials(monkeypatch):
    calls = {}

    def fake_launch_add(**kwargs):
        inspect.signature(wandb_launch._launch_add.launch_add).bind(**kwargs)
        calls["kwargs"] = kwargs
        calls["env"] = (os.environ.get("WANDB_API_KEY"), os.environ.get("WANDB_BASE_URL"))
        return "queued"

    monkeypatch.setattr(wandb_launch, "launch_add", fake_launch_add)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    client = WandbLaunchClient(WandbResource(api_key="secret-key", host="https://wandb.example"))
    kwargs, notes = launch_add_kwargs(
        {"job": "e/p/j:latest", "queue": "q", "parameters": {"lr": 0.1}, "cuda": True},
        "e",
        "p",
    )
    assert client.enqueue(**kwargs) == "queued"
    assert calls["env"] == ("secret-key", "https://wandb.example")
    assert os.environ.get("WANDB_BASE_URL") is None  # restored
    assert calls["kwargs"]["config"] == {"overrides": {"run_config": {"lr": 0.1}}}
    assert any("cuda" in n for n in notes)


def test_launch_client_runs_agent_and_direct_launch_with_launch_api(monkeypatch):
    seen = {}
    monkeypatch.setattr(
        wandb_launch, "create_and_run_agent", lambda api, config: seen.update(agent=(api, config))
    )
    monkeypatch.setattr(wandb_launch, "launch", lambda api, **kw: seen.update(launch=(api, kw)))
    # Building a real LaunchApi verifies the key against the cloud, unreachable here.
    api = object()
    monkeypatch.setattr(WandbResource, "launch_api", lambda self: api)
    client = WandbLaunchClient(WandbResource(api_key="k" * 40))
    client.run_agent({"entity": "e", "queues": ["q"]})
    client.launch(job="e/p/j:latest", synchronous=False)
    assert seen["agent"][0] is api and seen["launch"][0] is api
    assert seen["launch"][1] == {"job": "e/p/j:latest", "synchronous": False}
    inspect.signature(wandb_launch._launch.launch).bind(api=None, **seen["launch"][1])


def test_launch_job_without_queue_needs_a_job(monkeypatch):
    from dagster_wandb_io.launch import ops as launch_ops

    monkeypatch.setattr(launch_ops, "get_launch_client", lambda resource: object())

    @job(
        resource_defs={
            "wandb_config": make_values_resource(entity=str, project=str),
            "wandb_resource": wandb_resource,
        }
    )
    def j():
        run_launch_job()

    with pytest.raises(ConfigurationError, match="Set `job`"):
        j.execute_in_process(
            run_config={
                "resources": {"wandb_config": {"config": {"entity": "e", "project": "p"}}},
                "ops": {"run_launch_job": {"config": {"uri": "https://github.com/x/y"}}},
            }
        )


def test_launch_requires_api_key(monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY")
    with pytest.raises(MissingApiKeyError):
        WandbResource().launch_api()


def test_resource_modes_and_legacy_dict_access(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert WandbResource().resolved_mode() == "offline"
    assert WandbResource(mode="online").resolved_mode() == "online"
    monkeypatch.delenv("WANDB_MODE")
    assert WandbResource().resolved_mode() == "online"
    with pytest.raises(ConfigurationError, match="'online' or 'offline'"):
        WandbResource(mode="disabled").resolved_mode()
    res = WandbResource(host="https://h")
    assert res["host"] == "https://h"
    import wandb

    assert res["sdk"] is wandb


def test_offline_loaded_artifact_explains_cloud_only_features(base_dir, tmp_path):
    import wandb

    f = tmp_path / "a.txt"
    f.write_text("a")
    art = wandb.Artifact("plain", "dataset")
    art.add_file(str(f), name="a.txt")
    store = offline_store(base_dir)
    store.write(art, name="plain", config=WriteConfig(), run=run_spec())
    loaded = store.read("plain", Selection())
    assert loaded.name == "plain:v0" and loaded.files() == ["a.txt"]
    loaded.verify()
    with pytest.raises(OfflineUnavailableError, match="needs the W&B cloud"):
        loaded.link("model-registry/x")
    assert not hasattr(loaded, "link")  # an AttributeError subclass
    store.close()


def test_corrupt_entry_manifest_is_rebuilt_online(base_dir):
    from dagster_wandb_io.store import ArtifactStore, StoreSettings

    cloud = FakeCloud()
    settings = StoreSettings(
        base_dir=base_dir,
        mode="online",
        entity="my_entity",
        project="my_project",
        host="https://api.wandb.ai",
    )
    res = ArtifactStore(settings, cloud).write(
        [1, 2], name="m", config=WriteConfig(), run=run_spec()
    )
    manifest = Path(res.cache_path) / "entry.json"
    data = json.loads(manifest.read_text())
    data["files"]["output.pickle"]["md5"] = "AAAAAAAAAAAAAAAAAAAAAA=="
    manifest.write_text(json.dumps(data))
    assert ArtifactStore(settings, cloud).read("m", Selection()) == [1, 2]
    assert "output.pickle" in cloud.downloads
