"""Signed pickles: each team signs with its own Ed25519 key, the signature is bound to the
artifact and its producer, and every read path verifies it before unpickling. Each test below is
an attack (tampering, replay, forgery, rollback, a hostile file) and checks it is refused, and
that the canary inside the payload never ran."""

import base64
import json
import os
import pickle
import stat
from pathlib import Path

import pytest
import wandb
from conftest import INTRUDER_KEY, SIGNING_KEY
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dagster_wandb_io import (
    CacheCorruptionError,
    ConfigurationError,
    SignatureError,
    serialization,
    signing,
)
from dagster_wandb_io.cli import main as cli
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.errors import OfflineIndexError
from dagster_wandb_io.keys import (
    ALLOW_UNSIGNED_ENV,
    PRIVATE_KEY_ENV,
    PRIVATE_KEY_FILE_ENV,
    TRUSTED_KEYS_ENV,
    Signer,
    TrustStore,
)
from dagster_wandb_io.testing import ENTITY, PROJECT, offline_store, run_spec

from helpers import CAKE_ROWS, Canary, cakes_table, edit_file_and_its_hashes, tampered_table_json


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


def _intruder() -> Signer:
    return Signer(
        team="intruder",
        private_key=Ed25519PrivateKey.from_private_bytes(bytes.fromhex(INTRUDER_KEY)),
    )


def _signed_by(signer: Signer, obj, tmp_path: Path, *, entity: str, name: str) -> dict[str, bytes]:
    """A payload and signature made with ``signer``'s own key, claiming ``entity``/``name``."""
    dest = tmp_path / f"forged-{name}"
    binding = signing.Binding(entity, PROJECT, name, signer.team)
    serialization.dump(obj, "pickle", {}, dest, signer=signer, binding=binding)
    return {f: (dest / f).read_bytes() for f in ("output.pickle", "output.pickle.sig")}


def _index_file(base_dir: Path, name: str) -> Path:
    return base_dir / "dagster_wandb_io" / "index" / ENTITY / PROJECT / f"{name}.json"


def test_round_trip_is_signed_and_bound_to_the_artifact_and_producer(base_dir):
    store = offline_store(base_dir)
    run = run_spec()
    result = store.write({"a": 1}, name="signed", config=WriteConfig(), run=run)
    sig = json.loads(_cached_file(result, "output.pickle.sig").read_text())
    assert sig["scheme"] == "dagster-wandb-io/ed25519-chunked-v2"
    assert (sig["entity"], sig["project"], sig["name"], sig["team"]) == (
        ENTITY,
        PROJECT,
        "signed",
        "tests",
    )
    # The producing run is bound in the signed index.
    index = json.loads(_index_file(base_dir, "signed").read_text())
    assert index["versions"][0]["info"]["dagster_run_id"] == run.dagster_run_id
    assert index["signature"]["team"] == "tests"
    assert len(base64.b64decode(sig["ed25519"])) == 64
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
    _craft(store, tmp_path, "good", {"output.pickle": bytes(payload), "output.pickle.sig": sig})
    with pytest.raises(SignatureError, match="does not verify"):
        store.read("good", Selection())
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


def test_a_signed_payload_copied_over_another_artifact_is_refused(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    original = store.write(Canary(str(marker)), name="model", config=WriteConfig(), run=run_spec())
    files = {
        f: _cached_file(original, f).read_bytes() for f in ("output.pickle", "output.pickle.sig")
    }
    _craft(store, tmp_path, "features", files)
    with pytest.raises(SignatureError, match="copied over this artifact"):
        store.read("features", Selection())
    assert not marker.exists()


def test_another_team_cannot_publish_under_this_teams_entity(base_dir, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    # Through the API: refused before anything is written.
    monkeypatch.setenv(PRIVATE_KEY_ENV, INTRUDER_KEY)
    with pytest.raises(ConfigurationError, match="cannot publish artifacts under the W&B entity"):
        offline_store(base_dir).write(
            Canary(str(marker)), name="m", config=WriteConfig(), run=run_spec()
        )
    assert not (base_dir / "dagster_wandb_io" / "cache" / ENTITY).exists()
    monkeypatch.setenv(PRIVATE_KEY_ENV, SIGNING_KEY)
    # By hand: a payload validly signed with the intruder's own key, claiming this entity.
    store = offline_store(base_dir)
    forged = _signed_by(_intruder(), Canary(str(marker)), tmp_path, entity=ENTITY, name="m")
    _craft(store, tmp_path, "m", forged)
    with pytest.raises(SignatureError, match="belongs to 'tests'"):
        store.read("m", Selection())
    assert not marker.exists()


def test_another_team_cannot_forge_this_teams_signature(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    forged = _signed_by(_intruder(), Canary(str(marker)), tmp_path, entity=ENTITY, name="f")
    signature = json.loads(forged["output.pickle.sig"])
    signature["team"] = "tests"  # claim to be the owner; the intruder has only its own key
    forged["output.pickle.sig"] = json.dumps(signature).encode()
    _craft(store, tmp_path, "f", forged)
    with pytest.raises(SignatureError, match="does not verify with team 'tests'"):
        store.read("f", Selection())
    assert not marker.exists()


def test_unsigned_pickles_are_allowed_only_by_the_deployment(base_dir, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.delenv(PRIVATE_KEY_ENV)
    monkeypatch.setenv(ALLOW_UNSIGNED_ENV, "1")
    from dagster_wandb_io.keys import allow_unsigned_from_environment

    writer = offline_store(base_dir, allow_unsigned=allow_unsigned_from_environment())
    writer.write(Canary(str(marker)), name="unsigned", config=WriteConfig(), run=run_spec())
    monkeypatch.delenv(ALLOW_UNSIGNED_ENV)
    with pytest.raises(SignatureError, match=f"{ALLOW_UNSIGNED_ENV}=1"):
        offline_store(base_dir).read("unsigned", Selection())
    assert not marker.exists()
    assert offline_store(base_dir, allow_unsigned=True).read("unsigned", Selection()) == "fired"
    assert marker.exists()


def test_the_io_manager_takes_no_unsigned_switch_from_run_config():
    from dagster import DagsterInvalidConfigError, asset, materialize

    from dagster_wandb_io import WandbArtifactsIOManager

    @asset(io_manager_key="io_manager")
    def thing() -> int:
        return 1

    with pytest.raises(DagsterInvalidConfigError, match="allow_unsigned_pickles"):
        materialize(
            [thing],
            resources={"io_manager": WandbArtifactsIOManager.configure_at_launch()},
            run_config={
                "resources": {
                    "io_manager": {
                        "config": {
                            "entity": ENTITY,
                            "project": PROJECT,
                            "allow_unsigned_pickles": True,
                        }
                    }
                }
            },
        )


def test_a_signature_that_fails_is_refused_even_where_unsigned_is_allowed(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    good = store.write(Canary(str(marker)), name="k", config=WriteConfig(), run=run_spec())
    payload = bytearray(_cached_file(good, "output.pickle").read_bytes())
    payload[5] ^= 0x01
    files = {
        "output.pickle": bytes(payload),
        "output.pickle.sig": _cached_file(good, "output.pickle.sig").read_bytes(),
    }
    signature = json.loads(files["output.pickle.sig"])
    signature["name"] = "k2"  # even bound to the right name, the bytes do not verify
    _craft(store, tmp_path, "k2", {**files, "output.pickle.sig": json.dumps(signature).encode()})
    with pytest.raises(SignatureError, match="does not verify"):
        offline_store(base_dir, allow_unsigned=True).read("k2", Selection())
    assert not marker.exists()


def test_a_non_ascii_or_non_base64_signature_is_a_clear_error(base_dir, tmp_path):
    store = offline_store(base_dir)
    good = store.write("x", name="a", config=WriteConfig(), run=run_spec())
    files = {f: _cached_file(good, f).read_bytes() for f in ("output.pickle", "output.pickle.sig")}
    signature = json.loads(files["output.pickle.sig"])
    signature["ed25519"] = "ü" * 88
    _craft(store, tmp_path, "a", {**files, "output.pickle.sig": json.dumps(signature).encode()})
    with pytest.raises(SignatureError, match="not base64"):
        store.read("a", Selection())


def test_a_payload_whose_size_differs_from_its_signature_is_refused_before_it_is_read(
    base_dir, tmp_path, monkeypatch
):
    store = offline_store(base_dir)
    good = store.write("x", name="a", config=WriteConfig(), run=run_spec())
    # 12 MB whose footer claims millions of buffers: nothing of it may be read.
    footer = json.dumps(
        {
            "format": 1,
            "module": "pickle",
            "protocol": 5,
            "stream_length": 0,
            "buffers": [0] * 4_000_000,
            "raw_bytes": False,
        }
    ).encode()
    hostile = (
        b"\0" * (12 << 20) + footer + serialization._TRAILER.pack(len(footer), serialization.MAGIC)
    )
    _craft(
        store,
        tmp_path,
        "a",
        {
            "output.pickle": hostile,
            "output.pickle.sig": _cached_file(good, "output.pickle.sig").read_bytes(),
        },
    )
    reads = []
    monkeypatch.setattr(serialization, "_layout", lambda *a: reads.append(a) or ([0], None))
    with pytest.raises(SignatureError, match="modified or replaced after signing"):
        store.read("a", Selection())
    assert not reads


def test_a_footer_claiming_too_many_buffers_is_not_used_to_size_reads(tmp_path):
    footer = json.dumps(
        {"stream_length": 0, "buffers": [0] * (serialization._MAX_BUFFERS + 1)}
    ).encode()
    path = tmp_path / "output.pickle"
    path.write_bytes(footer + serialization._TRAILER.pack(len(footer), serialization.MAGIC))
    with open(path, "rb", buffering=0) as f:
        segments, parsed = serialization._layout(f, path.stat().st_size)
    assert segments == [path.stat().st_size] and parsed is None


def test_missing_key_on_write_names_the_fix(base_dir, monkeypatch):
    monkeypatch.delenv(PRIVATE_KEY_ENV)
    with pytest.raises(ConfigurationError, match="dagster-wandb-io keys generate"):
        offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())


def test_missing_trust_file_on_read_names_the_fix(base_dir, monkeypatch):
    offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())
    monkeypatch.delenv(TRUSTED_KEYS_ENV)
    with pytest.raises(ConfigurationError, match=TRUSTED_KEYS_ENV):
        offline_store(base_dir).read("x", Selection())


def test_a_malformed_private_key_or_trust_file_is_a_clear_error(base_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(PRIVATE_KEY_ENV, "short")
    with pytest.raises(ConfigurationError, match="not an Ed25519 private key"):
        offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())
    bad = tmp_path / "trust.json"
    bad.write_text("{garbage")
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(bad))
    with pytest.raises(ConfigurationError, match="unreadable or malformed"):
        offline_store(base_dir).read("x", Selection())


def test_a_key_of_no_listed_team_cannot_sign(base_dir, monkeypatch):
    monkeypatch.setenv(PRIVATE_KEY_ENV, Ed25519PrivateKey.generate().private_bytes_raw().hex())
    with pytest.raises(ConfigurationError, match="belongs to no team"):
        offline_store(base_dir).write(1, name="x", config=WriteConfig(), run=run_spec())


def test_the_private_key_can_come_from_a_file(base_dir, tmp_path, monkeypatch):
    key_file = tmp_path / "key"
    key_file.write_text(os.environ[PRIVATE_KEY_ENV] + "\n")
    monkeypatch.delenv(PRIVATE_KEY_ENV)
    monkeypatch.setenv(PRIVATE_KEY_FILE_ENV, str(key_file))
    store = offline_store(base_dir)
    store.write(7, name="x", config=WriteConfig(), run=run_spec())
    assert store.read("x", Selection()) == 7


def test_a_legacy_hmac_signature_is_refused_with_the_command_that_re_signs_it(base_dir, tmp_path):
    store = offline_store(base_dir)
    marker = tmp_path / "marker"
    legacy = {
        "scheme": signing.LEGACY_HMAC_SCHEME,
        "payload": "output.pickle",
        "length": 1,
        "chunk_size": 1 << 20,
        "key_id": "0" * 16,
        "hmac_sha256": "0" * 64,
    }
    payload = pickle.dumps(Canary(str(marker)))
    _craft(
        store,
        tmp_path,
        "old",
        {"output.pickle": payload, "output.pickle.sig": json.dumps(legacy).encode()},
    )
    with pytest.raises(SignatureError, match="dagster asset materialize"):
        store.read("old", Selection())
    assert not marker.exists()


def test_an_edited_alias_is_refused(base_dir):
    store = offline_store(base_dir)
    store.write(
        "old", name="r", config=WriteConfig(), run=run_spec("00000000-0000-0000-0000-000000000001")
    )
    store.write(
        "new", name="r", config=WriteConfig(), run=run_spec("00000000-0000-0000-0000-000000000002")
    )
    path = _index_file(base_dir, "r")
    data = json.loads(path.read_text())
    data["aliases"]["latest"] = "v0"  # roll `latest` back to the older version
    path.write_text(json.dumps(data))
    with pytest.raises(SignatureError, match="does not verify"):
        offline_store(base_dir).read("r", Selection())


def test_an_older_signed_index_put_back_is_detected_as_a_rollback(base_dir):
    store = offline_store(base_dir)
    store.write(
        "old", name="r", config=WriteConfig(), run=run_spec("00000000-0000-0000-0000-000000000001")
    )
    path = _index_file(base_dir, "r")
    older = path.read_bytes()
    store.write(
        "new", name="r", config=WriteConfig(), run=run_spec("00000000-0000-0000-0000-000000000002")
    )
    assert store.read("r", Selection()) == "new"
    path.write_bytes(older)
    with pytest.raises(SignatureError, match="rolled back"):
        store.read("r", Selection())


def test_a_garbage_index_is_a_clear_error_and_the_next_write_replaces_it(base_dir):
    store = offline_store(base_dir)
    store.write("one", name="g", config=WriteConfig(), run=run_spec())
    path = _index_file(base_dir, "g")
    path.write_text("{not json")
    with pytest.raises(OfflineIndexError, match="move it aside"):
        store.read("g", Selection())
    logs = []
    result = store.write(
        "two",
        name="g",
        config=WriteConfig(),
        run=run_spec("00000000-0000-0000-0000-000000000009"),
        log=logs.append,
    )
    assert result.version != "v0", "a version name is never reused"
    assert any("untrusted" in line for line in logs)
    assert list(path.parent.glob("g.json.untrusted-*"))
    assert store.read("g", Selection()) == "two"


def test_keys_generate_writes_an_owner_only_key_and_merges_the_trust_file(tmp_path):
    trust = tmp_path / "trust.json"
    for team in ("bakery", "ml"):
        assert (
            cli(
                [
                    "keys",
                    "generate",
                    "--team",
                    team,
                    "--entity",
                    team,
                    "--trust-file",
                    str(trust),
                    "--private-key-file",
                    str(tmp_path / f"{team}.key"),
                ]
            )
            == 0
        )
        assert stat.S_IMODE((tmp_path / f"{team}.key").stat().st_mode) == 0o600
    loaded = TrustStore.load(trust)
    assert sorted(loaded.teams) == ["bakery", "ml"]
    assert loaded.owner_of("ml") == "ml"


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
        f"m-{module}",
        {fname: bytes(payload), fname + ".sig": _cached_file(good, fname + ".sig").read_bytes()},
    )
    with pytest.raises(SignatureError, match="does not verify"):
        store.read(f"m-{module}", Selection())
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
        "blob",
        {
            "output.pickle": bytes(payload),
            "output.pickle.sig": _cached_file(good, "output.pickle.sig").read_bytes(),
        },
    )
    with pytest.raises(SignatureError, match="does not verify"):
        store.read("blob", Selection())


def test_a_cached_table_edited_with_its_hashes_is_detected_before_it_is_read(base_dir):
    """Before files' seals, this read returned the attacker's rows with no error."""
    store = offline_store(base_dir)
    result = store.write(cakes_table(), name="cakes", config=WriteConfig(), run=run_spec())
    entry_dir = Path(result.cache_path)
    assert store.read("cakes", Selection(get="rows")).data == CAKE_ROWS
    store.close()
    edit_file_and_its_hashes(entry_dir, "rows.table.json", tampered_table_json(entry_dir))
    for selection in (Selection(get="rows"), Selection(get_path="rows.table.json")):
        with pytest.raises(
            CacheCorruptionError, match=r"producer signed: its entry\.json was edited"
        ):
            offline_store(base_dir).read("cakes", selection)


def test_an_entry_indexed_without_a_seal_is_checked_by_md5(base_dir):
    """A version indexed before seals has no signed xxh128 to trust: its files are checked
    against their MD5s, which the digest in the signed index covers."""
    from dagster_wandb_io import index

    store = offline_store(base_dir)
    result = store.write(cakes_table(), name="cakes", config=WriteConfig(), run=run_spec())
    store.close()
    document_path = _index_file(base_dir, "cakes")
    document = json.loads(document_path.read_text())
    del document["versions"][0]["info"]["files_seal"]
    index._sign(
        document, Signer(team="tests", private_key=_signing_key()), ENTITY, PROJECT, "cakes"
    )
    document_path.write_text(json.dumps(document))
    entry_dir = Path(result.cache_path)
    edit_file_and_its_hashes(entry_dir, "rows.table.json", tampered_table_json(entry_dir))
    with pytest.raises(CacheCorruptionError, match="does not match its digest"):
        offline_store(base_dir).read("cakes", Selection(get="rows"))


def _signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SIGNING_KEY))
