"""Signed pickles: verified before unpickling on every read path; tampering is refused."""

import json
import os
from pathlib import Path

import pytest
import wandb

from dagster_wandb_io import CacheCorruptionError, ConfigurationError, SignatureError
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.signing import SIGNING_KEY_ENV

from helpers import Canary, offline_store, run_spec


def _cached_file(result, name: str) -> Path:
    return Path(result.cache_path) / "files" / name


def _flip(path: Path, offset: int = -40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def _craft(store, tmp_path: Path, name: str, files: dict[str, bytes]):
    """Log an artifact with exactly these files, as a malicious producer could."""
    artifact = wandb.Artifact(name, "dataset")
    for fname, data in files.items():
        p = tmp_path / f"{name}-{fname}"
        p.write_bytes(data)
        artifact.add_file(str(p), name=fname)
    return store.write(artifact, name=name, config=WriteConfig(), run=run_spec())


def test_round_trip_is_signed(base_dir):
    store = offline_store(base_dir)
    result = store.write({"a": 1}, name="signed", config=WriteConfig(), run=run_spec())
    sig = json.loads(_cached_file(result, "output.pickle.sig").read_text())
    assert sig["scheme"].startswith("dagster-wandb-io/hmac-sha256")
    assert len(sig["hmac_sha256"]) == 64
    assert store.read("signed", Selection()) == {"a": 1}


def test_flipped_byte_in_cache_is_never_unpickled_offline(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    result = store.write([Canary(str(marker))] * 3, name="c", config=WriteConfig(), run=run_spec())
    _flip(_cached_file(result, "output.pickle"))
    with pytest.raises(CacheCorruptionError, match="cannot be fetched again offline"):
        store.read("c", Selection())
    assert not marker.exists()


def test_flipped_byte_at_source_is_refused(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    good = store.write(Canary(str(marker)), name="good", config=WriteConfig(), run=run_spec())
    payload = bytearray(_cached_file(good, "output.pickle").read_bytes())
    payload[5] ^= 0x01
    sig = _cached_file(good, "output.pickle.sig").read_bytes()
    _craft(store, tmp_path, "evil", {"output.pickle": bytes(payload), "output.pickle.sig": sig})
    with pytest.raises(SignatureError, match="tampered"):
        store.read("evil", Selection())
    assert not marker.exists()


def test_swapped_signature_is_refused(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    a = store.write("harmless", name="a", config=WriteConfig(), run=run_spec())
    b = store.write(Canary(str(marker)), name="b", config=WriteConfig(), run=run_spec())
    _craft(
        store,
        tmp_path,
        "swapped",
        {
            "output.pickle": _cached_file(b, "output.pickle").read_bytes(),
            "output.pickle.sig": _cached_file(a, "output.pickle.sig").read_bytes(),
        },
    )
    with pytest.raises(SignatureError):
        store.read("swapped", Selection())
    assert not marker.exists()


def test_signature_for_another_payload_name_is_refused(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    a = store.write(Canary(str(marker)), name="a", config=WriteConfig(), run=run_spec())
    _craft(
        store,
        tmp_path,
        "renamed",
        {
            "output.dill": _cached_file(a, "output.pickle").read_bytes(),
            "output.dill.sig": _cached_file(a, "output.pickle.sig").read_bytes(),
        },
    )
    with pytest.raises(SignatureError, match=r"made for 'output\.pickle'"):
        store.read("renamed", Selection())
    assert not marker.exists()


def test_unsigned_payload_refused_unless_allowed(base_dir, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.delenv(SIGNING_KEY_ENV)
    writer = offline_store(base_dir, allow_unsigned=True)
    writer.write(Canary(str(marker)), name="unsigned", config=WriteConfig(), run=run_spec())
    monkeypatch.setenv(SIGNING_KEY_ENV, "test-signing-key-0123456789abcdef")
    with pytest.raises(SignatureError, match="allow_unsigned_pickles: true"):
        offline_store(base_dir).read("unsigned", Selection())
    assert not marker.exists()
    assert offline_store(base_dir, allow_unsigned=True).read("unsigned", Selection()) == "fired"
    assert marker.exists()


def test_wrong_key_is_refused(base_dir, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    offline_store(base_dir).write(
        Canary(str(marker)), name="k", config=WriteConfig(), run=run_spec()
    )
    monkeypatch.setenv(SIGNING_KEY_ENV, "another-key-fedcba9876543210")
    with pytest.raises(SignatureError, match="different key"):
        offline_store(base_dir).read("k", Selection())
    # Even allow_unsigned does not accept a signature that fails to verify.
    with pytest.raises(SignatureError, match="different key"):
        offline_store(base_dir, allow_unsigned=True).read("k", Selection())
    assert not marker.exists()


def test_missing_key_on_write_names_the_fix(base_dir, monkeypatch):
    monkeypatch.delenv(SIGNING_KEY_ENV)
    with pytest.raises(ConfigurationError, match=f"export {SIGNING_KEY_ENV}="):
        offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())


def test_missing_key_on_read_names_the_fix(base_dir, monkeypatch):
    offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())
    monkeypatch.delenv(SIGNING_KEY_ENV)
    with pytest.raises(ConfigurationError, match=SIGNING_KEY_ENV):
        offline_store(base_dir).read("x", Selection())


def test_short_key_rejected(base_dir, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, "short")
    with pytest.raises(ConfigurationError, match="too short"):
        offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())


def test_malformed_signature_file_refused(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    a = store.write(Canary(str(marker)), name="a", config=WriteConfig(), run=run_spec())
    _craft(
        store,
        tmp_path,
        "garbled",
        {
            "output.pickle": _cached_file(a, "output.pickle").read_bytes(),
            "output.pickle.sig": b"{not json",
        },
    )
    with pytest.raises(SignatureError, match="malformed"):
        store.read("garbled", Selection())
    assert not marker.exists()


@pytest.mark.parametrize("module", ["dill", "cloudpickle", "joblib"])
def test_every_module_is_verified(base_dir, tmp_path, module):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    cfg = WriteConfig(serialization_module=module)
    good = store.write(Canary(str(marker)), name=f"m-{module}", config=cfg, run=run_spec())
    fname = f"output.{module}"
    payload = bytearray(_cached_file(good, fname).read_bytes())
    payload[len(payload) // 2] ^= 0x01
    _craft(
        store,
        tmp_path,
        f"evil-{module}",
        {fname: bytes(payload), fname + ".sig": _cached_file(good, fname + ".sig").read_bytes()},
    )
    with pytest.raises(SignatureError):
        store.read(f"evil-{module}", Selection())
    assert not marker.exists()


def test_raw_bytes_payload_is_verified(base_dir, tmp_path):
    store = offline_store(base_dir)
    blob = os.urandom(3 << 20)  # stored as raw bytes inside the signed container
    good = store.write(blob, name="blob", config=WriteConfig(), run=run_spec())
    assert store.read("blob", Selection()) == blob
    payload = bytearray(_cached_file(good, "output.pickle").read_bytes())
    payload[1000] ^= 0x01
    _craft(
        store,
        tmp_path,
        "evil-blob",
        {
            "output.pickle": bytes(payload),
            "output.pickle.sig": _cached_file(good, "output.pickle.sig").read_bytes(),
        },
    )
    with pytest.raises(SignatureError, match="tampered"):
        store.read("evil-blob", Selection())
