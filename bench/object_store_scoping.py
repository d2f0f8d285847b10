"""What the object store's per-team identities cost a team's step outputs, on the platform's
local stack: 1 KiB objects put and read back under the team's own folder with the team's
identity (scoped to its paths, as shipped) and with the administrator's (unscoped, as every
team held before and as vanilla's one identity is), alternated. The S3 gateway checks each
request's key against the identity's actions; this is that check's cost per request."""

import statistics
import time
import uuid

import boto3

from devstack.local_stack import LocalStack

OBJECTS = 200
ROUNDS = 5
BODY = b"x" * 1024


def _client(stack: LocalStack, credentials: dict[str, str]):
    return boto3.client(
        "s3",
        endpoint_url=stack.object_store_url,
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def _milliseconds_per_request(s3, bucket: str, folder: str) -> float:
    started = time.perf_counter()
    for index in range(OBJECTS):
        key = f"{folder}/{index}"
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return (time.perf_counter() - started) * 1000 / (2 * OBJECTS)


def request_cost(stack: LocalStack, team: str) -> dict:
    bucket = stack.settings.object_store_bucket
    clients = {
        "team": _client(stack, stack.team_env(team)),
        "administrator": _client(stack, stack.dagster_env()),
    }
    folder = f"step-outputs/{team}/bench-{uuid.uuid4()}"
    measured: dict[str, list[float]] = {name: [] for name in clients}
    try:
        _milliseconds_per_request(clients["team"], bucket, folder)  # warm-up, not recorded
        for _ in range(ROUNDS):
            for name, s3 in clients.items():
                measured[name].append(_milliseconds_per_request(s3, bucket, folder))
    finally:
        for index in range(OBJECTS):
            clients["administrator"].delete_object(Bucket=bucket, Key=f"{folder}/{index}")
    team_ms, admin_ms = (statistics.median(measured[name]) for name in clients)
    return {
        "objects_per_round": OBJECTS,
        "rounds": ROUNDS,
        "team_identity_ms_per_request": round(team_ms, 3),
        "administrator_ms_per_request": round(admin_ms, 3),
        "all_ms_per_request": {name: [round(x, 3) for x in v] for name, v in measured.items()},
    }
