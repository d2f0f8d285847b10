"""The platform's S3-compatible object store: where step outputs and compute logs live, so a
step or a run can execute on any host.

Every process finds the store the way every AWS library does, through the standard variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), plus the
platform's bucket in DAGSTER_OBJECT_STORE_BUCKET. So boto3, dagster-aws's compute log manager
(dagster.yaml) and its IO manager (here) need no settings of their own, and pointing the
platform at another S3 or MinIO changes only those variables (OBJECT_STORE_* in .env).

    dagster-platform-object-store ensure-bucket   # the init service: wait, then create
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Literal

BUCKET_ENV = "DAGSTER_OBJECT_STORE_BUCKET"
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
# Where step outputs go: "object-store" (S3PickleIOManager) or "volume" (Dagster's
# fs_io_manager on DAGSTER_STORAGE_DIR, which every step of a run must then share). The
# platform sets it in both modes (DEFAULT_STEP_OUTPUTS); unset, as in a team's unit tests or
# `dg dev`, a team's jobs keep Dagster's own default.
STEP_OUTPUTS_ENV = "DAGSTER_STEP_OUTPUTS"
StepOutputs = Literal["object-store", "volume"]
STEP_OUTPUT_CHOICES: tuple[StepOutputs, ...] = ("object-store", "volume")
DEFAULT_STEP_OUTPUTS: StepOutputs = "object-store"
STEP_OUTPUT_PREFIX = "step-outputs"
# botocore's retries, with jittered exponential backoff of up to 20 s each: about a minute and a
# half in all, which rides out a store restart (tests/faults/test_infrastructure_restarts.py)
# before a step fails with the store's error.
MAX_ATTEMPTS = 12


class ObjectStoreError(RuntimeError):
    """The object store is misconfigured or unreachable; the message says which and the fix."""


def bucket() -> str:
    value = os.environ.get(BUCKET_ENV, "").strip()
    if not value:
        raise ObjectStoreError(
            f"{BUCKET_ENV} is not set, so step outputs and compute logs have nowhere to go. Set"
            " OBJECT_STORE_BUCKET in .env (`make env` writes the default) and run `make up`."
        )
    return value


def step_outputs(environ: os._Environ[str] | dict[str, str] = os.environ) -> StepOutputs:
    value = environ.get(STEP_OUTPUTS_ENV, "").strip() or "volume"
    if value not in STEP_OUTPUT_CHOICES:
        raise ObjectStoreError(
            f"{STEP_OUTPUTS_ENV}={value!r} is not one of {', '.join(STEP_OUTPUT_CHOICES)}. Fix"
            " STEP_OUTPUTS in .env."
        )
    return value  # type: ignore[return-value]


def client(max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A boto3 S3 client for the platform's store, with retries that ride out a restart."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        config=Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def step_output_io_manager(team: str) -> Any | None:
    """The IO manager every team's jobs get (component.py), or None to keep Dagster's default,
    fs_io_manager on the shared volume. Outputs go under step-outputs/<team>/, which only the
    team's object-store identity may write (deploy/object_store_identities.py): no step ever
    loads a pickle another team could have written."""
    if step_outputs() == "volume":
        return None
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from dagster_team_celery.steps.outputs import ProcessCachedS3PickleIOManager

    # Only names of variables go into the definitions, never their values: credentials and the
    # endpoint reach boto3 from the environment of the process that runs the step.
    return ProcessCachedS3PickleIOManager(
        s3_resource=S3Resource(max_attempts=MAX_ATTEMPTS),
        s3_bucket=dg.EnvVar(BUCKET_ENV),
        # The trailing slash: the IO manager lists its prefix once at start, and the team's
        # identity may list only inside its folder (step-outputs/<team>/*), not a bare
        # "step-outputs/<team>" that would also match step-outputs/<team>2/.
        s3_prefix=f"{STEP_OUTPUT_PREFIX}/{team}/",
    )


def _explain(error: Exception, name: str) -> str:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = os.environ.get(ENDPOINT_ENV) or "AWS S3"
    if isinstance(error, NoCredentialsError):
        return (
            "No credentials for the object store: set OBJECT_STORE_ACCESS_KEY_ID and"
            " OBJECT_STORE_SECRET_ACCESS_KEY in .env (`make env` creates them)."
        )
    if isinstance(error, EndpointConnectionError):
        return f"The object store at {endpoint} does not answer ({error})."
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return (
                f"The object store at {endpoint} refused the platform's credentials ({code})."
                " OBJECT_STORE_ACCESS_KEY_ID and OBJECT_STORE_SECRET_ACCESS_KEY in .env must be"
                " the store's; the bundled store takes them at its start, so after changing"
                " them run `make up` to recreate it."
            )
        return f"The object store at {endpoint} answered {code} for the bucket {name!r}: {error}"
    return f"The object store at {endpoint} failed: {error}"


def ensure_bucket(timeout: float = 120.0) -> bool:
    """Wait for the store to answer, then create the bucket unless it exists; True if created.

    Refused credentials fail at once, since waiting cannot fix them."""
    from botocore.exceptions import ClientError

    name = bucket()
    # One attempt per call: this loop does the waiting, so `timeout` bounds it (botocore's own
    # retries would add about a minute to each call).
    s3 = client(max_attempts=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s3.head_bucket(Bucket=name)
            return False
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                s3.create_bucket(Bucket=name)
                return True
            if code not in ("500", "502", "503", "InternalError", "ServiceUnavailable"):
                raise ObjectStoreError(_explain(error, name)) from None
            problem: Exception = error
        except Exception as error:  # unreachable endpoint, no credentials
            from botocore.exceptions import NoCredentialsError

            if isinstance(error, NoCredentialsError):
                raise ObjectStoreError(_explain(error, name)) from None
            problem = error
        if time.monotonic() >= deadline:
            raise ObjectStoreError(
                f"{_explain(problem, name)} Gave up after {timeout:.0f} s. Check that the"
                " object-store service is healthy (`make ps`), or that AWS_ENDPOINT_URL"
                " (OBJECT_STORE_ENDPOINT in .env) names your own store."
            )
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-platform-object-store")
    commands = parser.add_subparsers(dest="command", required=True)
    ensure = commands.add_parser("ensure-bucket", help="wait for the store; create the bucket")
    ensure.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        step_outputs()
        created = ensure_bucket(args.timeout)
    except ObjectStoreError as error:
        print(f"object store: {error}", file=sys.stderr)
        return 1
    where = os.environ.get(ENDPOINT_ENV) or "AWS S3"
    print(f"object store: bucket {bucket()!r} {'created' if created else 'exists'} at {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
