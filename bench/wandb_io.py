"""The W&B IO manager on a 100 MB object: its write/read benchmark, plus the cross-team read in
online mode against the fake cloud (the one fake allowed: W&B's API is unreachable)."""

import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock


def package_benchmark(size_mb: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "io.json"
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("wandb_io_write_read.py")),
                "--out",
                str(out),
                "--size-mb",
                str(size_mb),
                "--repeat",
                str(repeat),
            ],
            check=True,
            capture_output=True,
            cwd=scratch,
        )
        return json.loads(out.read_text())


def cross_team_read(size_mb: int) -> dict:
    """The bakery writes online; the ML team reads it. With the digest already in the shared
    cache the read fetches nothing; a cold cache fetches the whole artifact once."""
    from dagster_wandb_io.config import Selection, WriteConfig
    from dagster_wandb_io.keys import signing_environment
    from dagster_wandb_io.runs import build_run_spec
    from dagster_wandb_io.store import ArtifactStore, StoreSettings
    from dagster_wandb_io.testing import FakeCloud

    if "DAGSTER_WANDB_IO_TRUSTED_KEYS" not in os.environ:
        os.environ.update(signing_environment(Path(tempfile.mkdtemp()), "bench", ["bakery"]))
    os.environ.setdefault("WANDB_SILENT", "true")
    payload = os.urandom(size_mb * 1024 * 1024)
    cloud = FakeCloud()
    with tempfile.TemporaryDirectory() as shared, tempfile.TemporaryDirectory() as cold:
        os.environ["WANDB_DIR"] = shared

        def store(base: str, entity: str) -> ArtifactStore:
            settings = StoreSettings(
                base_dir=Path(base),
                mode="online",
                entity=entity,
                project="p",
                host="https://api.wandb.ai",
                api_key="k" * 40,
            )
            return ArtifactStore(settings, cloud)

        bakery_run = build_run_spec(
            entity="bakery",
            project="p",
            dagster_run_id="0ab2e48b-6d63-4ff5-b160-662cc60145f4",
            host="https://api.wandb.ai",
            api_key=None,
        )
        store(shared, "bakery").write(payload, name="baked", config=WriteConfig(), run=bakery_run)
        warm = store(shared, "ml")
        assert warm.read("baked", Selection(), entity="bakery", project="p") == payload
        cold_reader = store(cold, "ml")
        assert cold_reader.read("baked", Selection(), entity="bakery", project="p") == payload
    return {
        "artifact_bytes": len(payload),
        "bytes_fetched_digest_cached": warm.stats.bytes_downloaded,
        "bytes_fetched_cold_cache": cold_reader.stats.bytes_downloaded,
    }


def signature_cost(size_mb: int, repeat: int = 7) -> dict:
    """Sign and verify a ``size_mb`` payload: the chunk digests both schemes share, then the
    per-team Ed25519 signature over them, side by side with the retired shared-key
    HMAC-SHA256 over the same digests (what the package signed with before per-team keys)."""
    from dagster_wandb_io.keys import load_signer, load_trust, signing_environment
    from dagster_wandb_io.signing import Binding, ChunkDigester, sign, verify

    def median_ms(action) -> float:
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            action()
            seconds.append(time.perf_counter() - started)
        return round(statistics.median(seconds) * 1000, 3)

    payload = os.urandom(size_mb * 1024 * 1024)

    def digest():
        digester = ChunkDigester()
        digester.update(payload)
        return digester.finish()

    digests = digest()
    # The deployment's key only while it loads: the stacks started later bring their own.
    with (
        tempfile.TemporaryDirectory() as scratch,
        mock.patch.dict(os.environ, signing_environment(Path(scratch), "bakery", ["bakery"])),
    ):
        trust = load_trust(required=True)
        signer = load_signer(trust, required=True)
    binding = Binding(entity="bakery", project="p", name="baked", team="bakery")
    signature = sign(signer, "payload.pkl", digests, binding)
    expected = ("bakery", "p", "baked")
    shared_key = os.urandom(32)
    message = signature.message(digests)
    tag = hmac.new(shared_key, message, hashlib.sha256).digest()
    return {
        "payload_mb": size_mb,
        "chunk_digests_ms": median_ms(digest),
        "ed25519_sign_ms": median_ms(lambda: sign(signer, "payload.pkl", digests, binding)),
        "ed25519_verify_ms": median_ms(
            lambda: verify(trust, signature, "payload.pkl", digests, expected)
        ),
        "hmac_sha256_sign_ms": median_ms(
            lambda: hmac.new(shared_key, message, hashlib.sha256).digest()
        ),
        "hmac_sha256_verify_ms": median_ms(
            lambda: hmac.compare_digest(tag, hmac.new(shared_key, message, hashlib.sha256).digest())
        ),
    }
