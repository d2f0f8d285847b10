"""The object store: step outputs and captured logs live in it, whichever worker ran the step,
and only the platform's credentials reach it."""

import json
import subprocess
import sys
import time

import grpc
import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError

from devstack import infra
from devstack.local_stack import PLATFORM_BIN
from tests.stack_helpers import large_output_crosses_steps, object_store_client, object_store_keys

pytestmark = pytest.mark.local_stack


def test_step_outputs_and_captured_logs_live_in_the_bucket(local_stack, client):
    run_id = client.submit_job("bakery", "probe_ping")
    assert client.wait_for_run(run_id, timeout=120) == "SUCCESS"
    # dagster-aws's layout under the team's own folder: <prefix>/<team>/storage/<run id>/<step>/
    # <output>, and the captured logs under compute-logs/<team>/ (team_compute_logs.py).
    assert f"step-outputs/bakery/storage/{run_id}/report_runtime/result" in object_store_keys(
        local_stack, f"step-outputs/bakery/storage/{run_id}/"
    )
    logs = object_store_keys(local_stack, f"compute-logs/bakery/storage/{run_id}/")
    assert any(key.endswith(".out") for key in logs), logs
    # What the UI shows for the step, read back by the webserver from the bucket.
    assert "probe ran on" in client.captured_logs(run_id)["report_runtime"]["stdout"]


def test_a_large_output_reaches_the_next_step_intact(local_stack, client):
    run_id = large_output_crosses_steps(client, "ml", size_mb=20)
    stored = object_store_keys(local_stack, f"step-outputs/ml/storage/{run_id}/write_payload/")
    assert max(stored.values()) >= 20 << 20, stored


def test_the_store_refuses_anonymous_and_wrongly_signed_requests(local_stack):
    bucket = local_stack.settings.object_store_bucket
    anonymous = requests.get(f"{local_stack.object_store_url}/{bucket}", timeout=10)
    assert anonymous.status_code == 403
    wrong = object_store_client(local_stack, aws_secret_access_key="not-the-secret-key")
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        wrong.list_objects_v2(Bucket=bucket)


def _length_delimited(field: int, payload: bytes) -> bytes:
    length, varint = len(payload), b""
    while True:
        low, length = length & 0x7F, length >> 7
        varint += bytes([low | (0x80 if length else 0)])
        if not length:
            return bytes([(field << 3) | 2]) + varint + payload


def test_no_one_adds_a_store_identity_through_the_gateways_grpc_port(local_stack):
    """The attack: SeaweedFS's S3 gateway serves gRPC beside S3, and its IAM cache service took
    a new admin identity from anyone who connected (seen on 4.48 without the launcher's client
    certificates). Its port is the one gRPC port bound where S3 is, so it is reachable."""
    credential = _length_delimited(1, b"intruder-key") + _length_delimited(2, b"intruder-secret")
    identity = (
        _length_delimited(1, b"intruder")
        + _length_delimited(2, credential)
        + _length_delimited(3, b"Admin")
    )
    gateway_grpc = local_stack.ports[local_stack.OBJECT_STORE_INTERNAL_PORTS[-1]]
    with grpc.insecure_channel(f"127.0.0.1:{gateway_grpc}") as channel:
        put_identity = channel.unary_unary(
            "/messaging_pb.SeaweedS3IamCache/PutIdentity",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as refused:
            put_identity(_length_delimited(1, identity), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    intruder = object_store_client(
        local_stack, aws_access_key_id="intruder-key", aws_secret_access_key="intruder-secret"
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        intruder.list_buckets()


def ensure_bucket(stack, **environment) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLATFORM_BIN / "dagster-platform-object-store", "ensure-bucket", "--timeout", "3"],
        env={**stack.platform_env(), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_names_refused_credentials_and_the_fix(local_stack):
    result = ensure_bucket(local_stack, AWS_SECRET_ACCESS_KEY="not-the-secret-key")
    assert result.returncode == 1
    assert "refused the platform's credentials" in result.stderr
    assert "OBJECT_STORE_SECRET_ACCESS_KEY in .env" in result.stderr


def test_init_names_an_unreachable_store(local_stack):
    result = ensure_bucket(local_stack, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert result.returncode == 1
    assert "http://127.0.0.1:9 does not answer" in result.stderr
    assert "Gave up after 3 s" in result.stderr


def test_init_is_a_no_op_once_the_bucket_exists(local_stack):
    result = ensure_bucket(local_stack)
    assert result.returncode == 0, result.stderr
    assert f"bucket {local_stack.settings.object_store_bucket!r} exists" in result.stdout


def test_the_store_does_not_start_without_credentials(tmp_path):
    result = subprocess.run(
        [sys.executable, infra.OBJECT_STORE_LAUNCHER, "--dir", tmp_path],
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "platform"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "AWS_SECRET_ACCESS_KEY not set" in result.stderr
    assert "anonymous" in result.stderr and "make env" in result.stderr


def test_a_worker_process_builds_the_step_output_io_manager_once(local_stack, monkeypatch):
    """Dagster builds resources for every step; the platform's S3 IO manager keeps one client
    per process (dagster_team_celery/steps/outputs.py), which halved the fan-out's time."""
    from dagster_team_celery.platform_bucket import step_output_io_manager

    for name, value in local_stack.dagster_env().items():
        if name.startswith(("AWS_", "DAGSTER_OBJECT_STORE", "DAGSTER_STEP_OUTPUTS")):
            monkeypatch.setenv(name, value)
    import dagster as dg

    # As Dagster initializes a step's resources: built anew, their configuration resolved.
    with (
        dg.build_resources({"io_manager": step_output_io_manager("bakery")}) as first,
        dg.build_resources({"io_manager": step_output_io_manager("bakery")}) as second,
    ):
        assert first.io_manager is not second.io_manager
        assert first.io_manager.inner_io_manager() is second.io_manager.inner_io_manager()


def test_the_store_reads_credentials_from_files_as_swarm_gives_them(tmp_path):
    (tmp_path / "key-id").write_text("platform\n")
    (tmp_path / "secret").write_text("short\n")
    result = subprocess.run(
        [sys.executable, infra.OBJECT_STORE_LAUNCHER, "--dir", tmp_path / "data"],
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "key-id"),
            "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "secret"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Both were read (neither is "not set"); the short one from its file is refused.
    assert result.returncode == 1
    assert "shorter than" in result.stderr and "not set" not in result.stderr
    unreadable = subprocess.run(
        [sys.executable, infra.OBJECT_STORE_LAUNCHER, "--dir", tmp_path / "data"],
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID_FILE": str(tmp_path / "missing")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "AWS_ACCESS_KEY_ID_FILE=" in unreadable.stderr and "unreadable" in unreadable.stderr


def wait_for(condition, timeout: float = 120.0, what: str = "") -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() < started + timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.5)
    return time.monotonic() - started


def listing_as(stack, access_key: str, secret: str, team: str) -> str:
    """ "allowed", "refused" (the store answered no), or "down" (restarting)."""
    client = object_store_client(stack, aws_access_key_id=access_key, aws_secret_access_key=secret)
    try:
        client.list_objects_v2(Bucket=stack.settings.object_store_bucket, Prefix=f"{team}/")
        return "allowed"
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        refusals = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
        return "refused" if code in refusals else "down"
    except EndpointConnectionError:
        return "down"


def test_a_changed_identities_file_is_taken_and_a_bad_one_changes_nothing(
    local_stack,
):
    """`make env` after `make new-team` or `make remove-team` rewrites the identities file; the
    store takes it without a restart, a removed identity included (serve.py), and keeps the
    identities it has when the file is not one."""
    path = local_stack.object_store_identities_file
    original = path.read_text()
    log = local_stack.logs / "object-store.log"
    newcomer = {
        "name": "team_newcomer",
        "credentials": [{"accessKey": "team_newcomer", "secretKey": "newcomer-secret-key"}],
        "actions": ["List:" + local_stack.settings.object_store_bucket + "/newcomer/*"],
    }
    bakery = ("team_bakery", local_stack.secrets["team_object_store_secrets"]["bakery"])

    def newcomer_lists() -> str:
        return listing_as(local_stack, "team_newcomer", "newcomer-secret-key", "newcomer")

    try:
        path.write_text("{not json")
        wait_for(lambda: "kept the previous identities" in log.read_text(), what="the refusal")
        assert "make env" in log.read_text()
        assert object_store_keys(local_stack, "step-outputs/") is not None
        document = json.loads(original)
        document["identities"].append(newcomer)
        path.write_text(json.dumps(document))
        taken = wait_for(lambda: newcomer_lists() == "allowed", what="the new identity")
    finally:
        path.write_text(original)
    removed = wait_for(lambda: newcomer_lists() == "refused", what="the identity removed")
    print(f"\nidentity added in {taken:.1f} s, removed in {removed:.1f} s (no restart)")
    client = object_store_client(
        local_stack, aws_access_key_id=bakery[0], aws_secret_access_key=bakery[1]
    )
    client.list_objects_v2(
        Bucket=local_stack.settings.object_store_bucket, Prefix="step-outputs/bakery/"
    )
