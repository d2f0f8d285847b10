"""Who may read and write what in the platform's object store: one identity per team, one for
the webserver, and the store's administrator (``init``, the daemon, the platform's own code).

One bucket, with the team in every path a team writes::

    step-outputs/<team>/...          the team's step outputs (pickles a step loads)
    compute-logs/<team>/...          the team's captured step and run logs
    compute-logs/_ticks/...          sensor and schedule tick logs, which name no team
    wandb-artifacts/<entity>/...     offline W&B artifacts, under the entity that published them

A team reads and writes its own step outputs and logs and nothing of another team's: a pickle
another team could write is never loaded, since a loaded pickle runs code in the loading worker.
It reads every team's W&B artifacts (cross-team reads are the product) and writes only under the
entities it owns (the registry's, as in the trust file and the W&B index). The webserver reads
every team's logs, for the UI, and writes nothing.

``seaweedfs_identities`` renders this as the bundled SeaweedFS store's ``-s3.config`` (``make env``
writes keys/object-store-identities.json; docker/object-store/serve.py loads it, and reloads it
when a team is added). ``iam_policy`` is the same grant as an AWS IAM policy, for a deployment
on its own S3 (README, "Your own S3").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dagster_team_celery.deploy.redis_acl import team_user
from dagster_team_celery.platform_bucket import STEP_OUTPUT_PREFIX

COMPUTE_LOGS = "compute-logs"
# The W&B package's store prefix in DAGSTER_WANDB_IO_STORE_URL (s3://<bucket>/wandb-artifacts).
ARTIFACTS = "wandb-artifacts"
WEBSERVER_ACCESS_KEY = "webserver"
# Logs that belong to no run (team_compute_logs.py); not a team name, which has no underscore.
TICKS_FOLDER = "_ticks"


@dataclass(frozen=True)
class TeamIdentity:
    access_key: str
    secret_key: str
    entities: Sequence[str]


def team_access_key(team: str) -> str:
    """The team's access key id in the bundled store: its Redis user's and Postgres role's name."""
    return team_user(team)


def team_identities(
    secret_keys: Mapping[str, str],
    entities: Mapping[str, Sequence[str]],
    access_keys: Mapping[str, str] | None = None,
) -> dict[str, TeamIdentity]:
    """Each team's identity: its secret key, the entities it owns, and its access key id
    (``access_keys``' where given, e.g. your own S3's IAM user, else ``team_access_key``)."""
    access_keys = access_keys or {}
    return {
        team: TeamIdentity(
            access_key=access_keys.get(team) or team_access_key(team),
            secret_key=secret,
            entities=entities[team],
        )
        for team, secret in secret_keys.items()
    }


def team_paths(team: str) -> tuple[str, ...]:
    """The folders a team writes and reads, besides its entities' artifacts: its own, and the
    tick logs every team's code server writes."""
    return (
        f"{STEP_OUTPUT_PREFIX}/{team}",
        f"{COMPUTE_LOGS}/{team}",
        f"{COMPUTE_LOGS}/{TICKS_FOLDER}",
    )


def team_actions(bucket: str, team: str, entities: Sequence[str]) -> list[str]:
    """SeaweedFS actions are `<Action>:<bucket>/<key prefix>*`, checked against each request's
    bucket and key; `List` is checked against the listing's prefix."""
    own = [
        f"{action}:{bucket}/{path}/*"
        for path in team_paths(team)
        for action in ("Read", "Write", "List")
    ]
    artifacts = [f"Read:{bucket}/{ARTIFACTS}/*", f"List:{bucket}/{ARTIFACTS}/*"]
    published = [f"Write:{bucket}/{ARTIFACTS}/{entity}/*" for entity in entities]
    return own + artifacts + published


def seaweedfs_identities(
    bucket: str, teams: Mapping[str, TeamIdentity], webserver_secret: str
) -> str:
    """The bundled store's identities file (JSON). The administrator is not in it: the store
    takes that one from its own AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""
    identities = [
        {
            "name": "webserver",
            "credentials": [{"accessKey": WEBSERVER_ACCESS_KEY, "secretKey": webserver_secret}],
            "actions": [f"Read:{bucket}/{COMPUTE_LOGS}/*", f"List:{bucket}/{COMPUTE_LOGS}/*"],
        }
    ]
    for team, identity in sorted(teams.items()):
        identities.append(
            {
                "name": team_access_key(team),
                "credentials": [
                    {"accessKey": identity.access_key, "secretKey": identity.secret_key}
                ],
                "actions": team_actions(bucket, team, identity.entities),
            }
        )
    return json.dumps({"identities": identities}, indent=1) + "\n"


def iam_policy(bucket: str, team: str, entities: Sequence[str]) -> dict[str, object]:
    """The same grant for an IAM user of AWS S3 (or MinIO, which reads IAM policies)."""
    arn = f"arn:aws:s3:::{bucket}"
    own = [f"{path}/*" for path in team_paths(team)]
    published = [f"{ARTIFACTS}/{entity}/*" for entity in entities]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnStepOutputsAndLogs",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{arn}/{key}" for key in own],
            },
            {
                "Sid": "EveryTeamsArtifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{arn}/{ARTIFACTS}/*"],
            },
            {
                "Sid": "OwnEntitiesArtifacts",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{arn}/{key}" for key in published],
            },
            {
                "Sid": "ListOwnFoldersAndArtifacts",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [arn],
                "Condition": {"StringLike": {"s3:prefix": [*own, f"{ARTIFACTS}/*"]}},
            },
        ],
    }
