"""Dagster concurrency pools, held by Celery steps.

An op or asset with ``pool="gpu"`` runs only while it holds one of the pool's slots, across
every run of every team (the limit lives in the instance: ``dagster instance concurrency set
gpu 1``, the UI's Pools page, or ``concurrency.pools.default_limit`` in dagster.yaml). The
run's orchestrator claims the slot before it submits the step to Celery (``ActiveExecution``
does, through this context) and frees it when the step ends; the Celery worker never claims,
so a redelivered or resubmitted step still holds exactly one slot.

Stock dagster-celery frees a slot only through the success or failure events a task returns.
A step whose task failed, was revoked or terminated, or whose worker was lost, returns none,
so its slot stayed taken until someone freed it by hand. The platform's loop releases the slot
whenever a step leaves its in-flight set (orchestration.py), whatever the reason.
"""

import time

from dagster import DagsterInstance
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.dagster_run import DagsterRun


class PoolSlots(InstanceConcurrencyContext):
    """Dagster's per-run claim bookkeeping, with a bounded wait between claim attempts.

    Upstream backs off from 1 s to 15 s between attempts for a blocked step, so a step that
    has waited a minute starts up to 15 s after its slot frees. One claim query per blocked
    step every ``recheck_seconds`` is cheap next to a GPU sitting idle.
    """

    def __init__(
        self, instance: DagsterInstance, dagster_run: DagsterRun, recheck_seconds: float
    ) -> None:
        super().__init__(instance, dagster_run)
        self.recheck_seconds = recheck_seconds

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        claimed = super().claim(concurrency_key, step_key, step_priority)
        retry_at = self._pending_timeouts.get(step_key)
        if not claimed and retry_at is not None:
            self._pending_timeouts[step_key] = min(retry_at, time.time() + self.recheck_seconds)
        return claimed

    def release(self, step_key: str) -> None:
        """Free the step's slot if it holds one; a no-op otherwise, so safe to call twice."""
        self.free_step(step_key)
