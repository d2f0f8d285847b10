"""The object store's identities: each team confined to its own paths, as SeaweedFS and IAM
read them. tests/test_object_store.py tries them against a real store."""

import json

from dagster_team_celery.deploy import object_store_identities as ids

TEAMS = {
    "bakery": ids.TeamIdentity("team_bakery", "bakery-secret", ["bakery"]),
    "ml": ids.TeamIdentity("team_ml", "ml-secret", ["ml", "ml-research"]),
}


def identities() -> dict[str, dict]:
    document = json.loads(ids.seaweedfs_identities("platform", TEAMS, "web-secret"))
    return {identity["name"]: identity for identity in document["identities"]}


def test_each_team_writes_only_its_own_folders_and_entities():
    bakery = identities()["team_bakery"]
    assert bakery["credentials"] == [{"accessKey": "team_bakery", "secretKey": "bakery-secret"}]
    writes = sorted(a for a in bakery["actions"] if a.startswith("Write:"))
    assert writes == [
        "Write:platform/compute-logs/_ticks/*",
        "Write:platform/compute-logs/bakery/*",
        "Write:platform/step-outputs/bakery/*",
        "Write:platform/wandb-artifacts/bakery/*",
    ]
    assert not any("/ml" in action for action in bakery["actions"])
    ml_writes = [a for a in identities()["team_ml"]["actions"] if a.startswith("Write:")]
    assert "Write:platform/wandb-artifacts/ml-research/*" in ml_writes


def test_every_team_reads_every_teams_artifacts_and_no_other_teams_outputs():
    for name in ("team_bakery", "team_ml"):
        reads = [a for a in identities()[name]["actions"] if a.startswith("Read:")]
        assert "Read:platform/wandb-artifacts/*" in reads
        assert not any(a.startswith("Read:platform/step-outputs/*") for a in reads)
        # No action without a path: that would reach the whole bucket.
        assert all("/" in action for action in identities()[name]["actions"])


def test_the_webserver_only_reads_logs_and_the_administrator_is_not_in_the_file():
    found = identities()
    assert found["webserver"]["actions"] == [
        "Read:platform/compute-logs/*",
        "List:platform/compute-logs/*",
    ]
    assert set(found) == {"webserver", "team_bakery", "team_ml"}


def test_the_iam_policy_grants_what_the_bundled_store_does():
    policy = ids.iam_policy("platform", "bakery", ["bakery"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["OwnStepOutputsAndLogs"]["Resource"] == [
        "arn:aws:s3:::platform/step-outputs/bakery/*",
        "arn:aws:s3:::platform/compute-logs/bakery/*",
        "arn:aws:s3:::platform/compute-logs/_ticks/*",
    ]
    assert statements["EveryTeamsArtifacts"]["Action"] == ["s3:GetObject"]
    assert statements["OwnEntitiesArtifacts"]["Resource"] == [
        "arn:aws:s3:::platform/wandb-artifacts/bakery/*"
    ]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
