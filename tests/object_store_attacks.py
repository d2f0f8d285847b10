"""What a hostile team tries against another team's objects in the platform's object store,
with its own identity (the AWS_* variables its processes hold), run in its own environment:
the local stack's processes or, for compose, its own container. Each attack of ATTACKS must be
refused; reading the victim's W&B artifacts must work (cross-team reads are the product).

With the one identity every team held before (the store's administrator), each attack worked:
a pickle written over another team's step output ran its code in the victim's worker.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

# Run with the attacker's environment; argv[1] is a JSON object of the victim's keys.
ATTACK = r"""
import json, os, pickle, sys
import boto3
from botocore.exceptions import ClientError

target = json.loads(sys.argv[1])
bucket = os.environ["DAGSTER_OBJECT_STORE_BUCKET"]
s3 = boto3.client("s3")
own = f"step-outputs/{target['attacker']}/attack-source"


class Payload:
    def __reduce__(self):
        return (print, ("attacker code ran in the victim's worker",))


def put(key):
    s3.put_object(Bucket=bucket, Key=key, Body=pickle.dumps(Payload()))


def get(key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def delete(key):
    s3.delete_object(Bucket=bucket, Key=key)


def copy_over(key):
    put(own)
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": own})


def batch_delete(key):
    errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]}).get("Errors")
    if errors:
        raise ClientError({"Error": {"Code": errors[0]["Code"]}}, "DeleteObjects")


def listing(prefix):
    return s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount")


step_output, log, artifact = target["step_output"], target["compute_log"], target["artifact"]
attacks = {
    "read_step_output": lambda: get(step_output),
    "list_step_outputs": lambda: listing(f"step-outputs/{target['victim']}/"),
    "overwrite_step_output": lambda: put(step_output),
    "copy_over_step_output": lambda: copy_over(step_output),
    "delete_step_output": lambda: delete(step_output),
    "batch_delete_step_output": lambda: batch_delete(step_output),
    "read_compute_log": lambda: get(log),
    "overwrite_compute_log": lambda: put(log),
    "delete_compute_log": lambda: delete(log),
    "overwrite_artifact": lambda: put(artifact),
    "delete_artifact": lambda: delete(artifact),
    "create_bucket": lambda: s3.create_bucket(Bucket=bucket + "-attacker"),
}
outcomes = {}
for name, attack in attacks.items():
    try:
        attack()
        outcomes[name] = "done"
    except ClientError as error:
        outcomes[name] = "refused: " + error.response.get("Error", {}).get("Code", "?")
try:
    read = get(artifact)
    outcomes["read_artifact"] = f"read {len(read)} bytes"
except ClientError as error:
    outcomes["read_artifact"] = "refused: " + error.response.get("Error", {}).get("Code", "?")
print(json.dumps({"identity": os.environ.get("AWS_ACCESS_KEY_ID"), "outcomes": outcomes}))
"""

# Run with the administrator's environment: one key of each kind of the victim's objects, and
# a digest of every one of them (ETags), to compare before and after the attacks.
SURVEY = r"""
import hashlib, json, os, sys
import boto3

victim, entity = sys.argv[1], sys.argv[2]
bucket = os.environ["DAGSTER_OBJECT_STORE_BUCKET"]
s3 = boto3.client("s3")
found, digest = {}, hashlib.sha256()
for kind, prefix in (
    ("step_output", f"step-outputs/{victim}/"),
    ("compute_log", f"compute-logs/{victim}/"),
    ("artifact", f"wandb-artifacts/{entity}/"),
):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.setdefault(kind, item["Key"])
            digest.update(f"{item['Key']} {item['ETag']}\n".encode())
print(json.dumps({"keys": found, "digest": digest.hexdigest()}))
"""


@dataclass
class Attacked:
    identity: str
    outcomes: dict[str, str]


def run_python(command: list[str], code: str, *args: str, env: dict[str, str] | None = None):
    done = subprocess.run(
        [*command, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def survey(
    command: list[str], victim: str, entity: str, env: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """As the administrator: a key of each kind the victim has, and a digest of all of them."""
    found = run_python(command, SURVEY, victim, entity, env=env)
    return found["keys"], found["digest"]


def attack(
    command: list[str],
    attacker: str,
    victim: str,
    keys: dict[str, str],
    env: dict[str, str] | None = None,
) -> Attacked:
    assert set(keys) == {"step_output", "compute_log", "artifact"}, keys
    target = json.dumps({**keys, "attacker": attacker, "victim": victim})
    found = run_python(command, ATTACK, target, env=env)
    return Attacked(found["identity"], found["outcomes"])


def assert_confined(attacked: Attacked, attacker: str) -> None:
    """The attacker used its own identity, every attack was refused, and it still reads the
    victim's artifacts."""
    assert attacked.identity == f"team_{attacker}", attacked.identity
    read = attacked.outcomes.pop("read_artifact")
    assert read.startswith("read "), f"{attacker} cannot read the victim's artifact: {read}"
    worked = {name: outcome for name, outcome in attacked.outcomes.items() if outcome == "done"}
    assert not worked, f"{attacker}'s identity could: {sorted(worked)}"
