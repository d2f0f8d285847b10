"""A W&B artifact whose stored copy was corrupted: refused by a host that must fetch it, with
the fix in the error, and readable again once the fix is applied."""

import re

import pytest

from dagster_wandb_io.eviction import evict
from tests.faults.conftest import failure_messages
from tests.stack_helpers import object_store_client, object_store_keys

pytestmark = [pytest.mark.faults, pytest.mark.local_stack]


def run(client, team: str, job: str) -> tuple[str, str]:
    run_id = client.submit_job(team, job)
    return run_id, client.wait_for_run(run_id, timeout=300)


def test_a_corrupt_stored_artifact_is_refused_then_repaired_as_the_error_says(
    fault_stack, fault_client
):
    assert run(fault_client, "bakery", "cake_production_job")[1] == "SUCCESS"
    [entry] = fault_stack.artifact_cache.glob("dagster_wandb_io/cache/bakery/cakes/baked_cakes/*/")
    digest = entry.name
    bucket = fault_stack.settings.object_store_bucket
    s3 = object_store_client(fault_stack)
    prefix = f"wandb-artifacts/bakery/cakes/baked_cakes/{digest}/files/"
    for key, size in object_store_keys(fault_stack, prefix).items():
        s3.put_object(Bucket=bucket, Key=key, Body=b"\0" * size)
    # A host whose cache does not have it: this one, once its copy is evicted.
    assert evict(fault_stack.artifact_cache, digest=digest, include_offline=True).evicted

    forecast, status = run(fault_client, "ml", "forecast_job")
    messages = failure_messages(fault_client, forecast)
    assert status == "FAILURE"
    assert "from the object store twice and its MD5 does not match" in messages
    manifest = re.search(
        r"The stored file is corrupt: delete s3://[^/]+/(\S+entry\.json)", messages
    )
    assert manifest, messages[-2000:]

    # The fix the error names.
    s3.delete_object(Bucket=bucket, Key=manifest.group(1))
    assert run(fault_client, "bakery", "cake_production_job")[1] == "SUCCESS"
    assert run(fault_client, "ml", "forecast_job")[1] == "SUCCESS"
