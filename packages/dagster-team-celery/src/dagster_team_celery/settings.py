"""The Celery settings every team shares, read from the environment.

The orchestrating run worker (through the executor) and the Celery worker (through
``worker.py``) build their Celery app from these same values, so a team's jobs and its
workers can never disagree on the broker, the result backend, or delivery guarantees.
"""

import os
from typing import Any

BROKER_URL_ENV = "DAGSTER_CELERY_BROKER_URL"
BACKEND_URL_ENV = "DAGSTER_CELERY_BACKEND_URL"
VISIBILITY_TIMEOUT_ENV = "DAGSTER_CELERY_VISIBILITY_TIMEOUT"
TEAM_ENV = "DAGSTER_TEAM"

# Redelivery after a silent worker death waits this long, and a step that runs longer than
# this is handed to a second worker while the first still runs. One hour suits steps of up
# to tens of minutes; [faults] covers how lost workers are detected sooner than this.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 3600


class PlatformConfigError(RuntimeError):
    """A setting the platform needs is missing or malformed; the message says how to fix it."""


def required_env(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise PlatformConfigError(f"Environment variable {name} is not set. {hint}")
    return value


def broker_url() -> str:
    return required_env(
        BROKER_URL_ENV,
        "Set it to the Redis broker, e.g. redis://:<REDIS_PASSWORD>@redis:6379/0 "
        "(docker compose sets it from .env; `make env` creates .env).",
    )


def backend_url() -> str:
    return required_env(
        BACKEND_URL_ENV,
        "Set it to a result backend the orchestrator can poll, e.g. "
        "redis://:<REDIS_PASSWORD>@redis:6379/1 (not rpc://).",
    )


def team_name() -> str:
    return required_env(
        TEAM_ENV, "Set it to the team whose queue this worker consumes, e.g. DAGSTER_TEAM=bakery."
    )


def visibility_timeout_seconds() -> int:
    raw = os.environ.get(VISIBILITY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_VISIBILITY_TIMEOUT_SECONDS
    try:
        seconds = int(raw)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise PlatformConfigError(
            f"{VISIBILITY_TIMEOUT_ENV}={raw!r} is not a positive number of seconds. "
            f"Unset it to use the default ({DEFAULT_VISIBILITY_TIMEOUT_SECONDS})."
        )
    return seconds


def key_prefix(team: str) -> str:
    """Where a team's broker and result keys and pub/sub channels live in Redis, so that a
    Redis ACL user can be confined to them (redis_acl.py)."""
    return f"team:{team}:"


def run_queue(team: str) -> str:
    """The queue of a team's warm run workers (run_worker.py); its steps go to queue ``team``."""
    return f"{team}-runs"


def celery_settings(queue: str, team: str | None = None) -> dict[str, Any]:
    """Celery's lowercase settings for one of a team's queues (``team`` defaults to the queue's
    name, which is the team's step queue), with at-least-once delivery. Every key and channel,
    the queue's, worker control's (inspect, revoke) and events', and every result, is under the
    team's key prefix."""
    prefix = key_prefix(team or queue)
    transport_options = {
        "global_keyprefix": prefix,
        "visibility_timeout": visibility_timeout_seconds(),
        # Reconnect quickly instead of failing a submission while Redis restarts.
        "max_retries": 10,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 2,
    }
    return {
        "task_default_queue": queue,
        # Ack only after the step finished, so a worker that dies mid-step leaves the
        # message to be redelivered instead of losing it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message in hand per process: a dying worker strands at most its running steps.
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": {
            "global_keyprefix": prefix,
            "retry_policy": {"timeout": 5.0},
        },
        # A step that finished while Redis restarts must still store its result: without
        # retries Celery records the connection error as the task's failure (raised "outside
        # body", after the step succeeded) and the run fails. Up to about 4 minutes.
        "result_backend_always_retry": True,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 5000,
        "result_backend_max_retries": 60,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Flower shows task progress from these events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "result_expires": 7 * 24 * 3600,
        # A step's prints stay on the real stdout, which Dagster's compute log capture swaps for
        # the step's log file (so the UI shows them). Celery's default replaces sys.stdout with a
        # logger that has no file descriptor, and the capture then records nothing.
        "worker_redirect_stdouts": False,
    }


TERMINATE_GRACE_ENV = "DAGSTER_CELERY_TERMINATE_GRACE_SECONDS"
DEFAULT_TERMINATE_GRACE_SECONDS = 10.0


def terminate_grace_seconds() -> float:
    return seconds_setting(TERMINATE_GRACE_ENV, DEFAULT_TERMINATE_GRACE_SECONDS)


RUN_TERMINATE_GRACE_ENV = "DAGSTER_RUN_TERMINATE_GRACE_SECONDS"
# A terminated run first stops its own steps (each has terminate_grace_seconds()) and then
# reports CANCELED; only a run stuck past this is killed, and run monitoring then cancels it.
DEFAULT_RUN_TERMINATE_GRACE_SECONDS = 25.0


def seconds_setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise PlatformConfigError(
            f"{name}={raw!r} is not a number of seconds >= 0. Unset it to use the default "
            f"({default:g})."
        )
    return seconds


def run_terminate_grace_seconds() -> float:
    return seconds_setting(RUN_TERMINATE_GRACE_ENV, DEFAULT_RUN_TERMINATE_GRACE_SECONDS)
