"""The task a team worker runs for each step: dagster-celery's ``execute_plan``, made safe to
deliver twice.

Late acknowledgement means a step can arrive again: Redis hands an unacknowledged message
out after the visibility timeout, and a pool process that dies mid-step has its message
requeued. The task keeps dagster-celery's name and arguments (orchestrators submit it with
dagster-celery's own ``_submit_task``) and adds one check before executing:

- the run already ended: nothing is executed, nothing is reported;
- the step already succeeded in this run: nothing is executed, and the events the first
  delivery recorded are returned, so an orchestrator still waiting on this task sees the
  step finish instead of an unknown state.
"""

import logging
from typing import Any

from celery import Celery, Task
from dagster import DagsterEventType, DagsterInstance
from dagster import _check as check
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value, unpack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CeleryExecutor

logger = logging.getLogger(__name__)


def recorded_step_events(instance: DagsterInstance, run_id: str, step_keys: list[str]) -> list[str]:
    """The serialized events of these steps if every one of them already succeeded, else []."""
    succeeded = {
        record.event_log_entry.step_key
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.STEP_SUCCESS
        ).records
    }
    if not step_keys or not set(step_keys) <= succeeded:
        return []
    return [
        serialize_value(entry.dagster_event)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.step_key in step_keys
    ]


def create_execute_plan_task(app: Celery) -> Task:
    @app.task(bind=True, name=TASK_EXECUTE_PLAN_NAME)
    def execute_plan(
        self: Task, execute_step_args_packed: dict[str, Any], executable_dict: dict[str, Any]
    ) -> list[str]:
        args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
        instance = DagsterInstance.from_ref(check.not_none(args.instance_ref))
        recon_job = ReconstructableJob.from_dict(executable_dict)
        dagster_run = instance.get_run_by_id(args.run_id)
        check.invariant(dagster_run, f"Could not load run {args.run_id}")
        assert dagster_run is not None
        step_keys = list(args.step_keys_to_execute or [])
        step_keys_str = ", ".join(step_keys)

        if dagster_run.is_finished:
            logger.warning(
                "Skipping redelivered step(s) %s: run %s already ended (%s).",
                step_keys_str,
                args.run_id,
                dagster_run.status.value,
            )
            return []
        if recorded := recorded_step_events(instance, args.run_id, step_keys):
            logger.warning(
                "Step(s) %s of run %s already succeeded; returning the recorded events instead "
                "of executing again.",
                step_keys_str,
                args.run_id,
            )
            return recorded

        execution_plan = create_execution_plan(
            recon_job,
            dagster_run.run_config,
            step_keys_to_execute=step_keys,
            known_state=args.known_state,
        )
        engine_event = instance.report_engine_event(
            f"Executing steps {step_keys_str} in celery worker",
            dagster_run,
            EngineEventData(
                {"step_keys": step_keys_str, "Celery worker": self.request.hostname},
                marker_end=DELEGATE_MARKER,
            ),
            CeleryExecutor,
            step_key=execution_plan.step_handle_for_single_step_plans().to_key(),  # type: ignore[union-attr]
        )
        events = [engine_event]
        events.extend(
            execute_plan_iterator(
                execution_plan=execution_plan,
                job=recon_job,
                dagster_run=dagster_run,
                instance=instance,
                retry_mode=args.retry_mode,
                run_config=dagster_run.run_config,
            )
        )
        return [serialize_value(event) for event in events]

    return execute_plan
