"""The orchestrating side of a team's Celery run: submit steps, follow them, never hang.

dagster-celery's ``core_celery_execution_loop`` (dagster_celery/core_execution_loop.py) asks
the result backend about each in-flight step once per second (``TICK_SECONDS = 1``, line 22)
and trusts that every submitted step eventually reports back. ``StepOrchestrator`` keeps that
loop's structure and task format (steps are still submitted by dagster-celery's
``_submit_task``, so any dagster-celery worker can run them) and changes three things:

1. **Completion is read in one round trip per tick.** One Redis ``MGET`` fetches every
   in-flight step's result, so the tick can be short (``poll_interval_seconds``, default
   0.05 s) without one request per step per tick.
2. **A step whose worker died is not waited for forever.** A step's STARTED state names the
   worker running it. Every ``worker_check_interval_seconds`` the loop asks those workers which
   tasks they are running; a step that two checks in a row find nowhere was lost with its
   worker (a restarted worker keeps its name but not its tasks). It is resubmitted as soon as
   a worker consumes the queue, and fails the run with a message naming the worker and the
   queue once ``lost_worker_timeout_seconds`` pass without one. Steps waiting in a queue that
   no worker consumes fail the same way.
3. **A broker or backend outage is ridden out** for up to ``broker_outage_timeout_seconds``,
   instead of failing the run at the first connection error.
4. **Terminate stops running steps.** dagster-celery revokes in-flight tasks without
   ``terminate=True`` (core_execution_loop.py), which only drops tasks not yet started, and
   then waits for every running step to finish: a terminated run's steps run to the end and,
   when they succeed, so does the run. Here queued steps are revoked, running ones get SIGTERM
   (the worker escalates to SIGKILL, see termination.py), and the loop waits only until the
   workers confirm, at most ``termination_timeout_seconds``; the unfinished plan then ends the
   run CANCELED.
5. **Concurrency pools hold.** A step's pool slot is claimed before it is submitted and freed
   whenever it leaves the loop, whatever the reason; blocked steps are reported as such and
   retried at least every ``pool_recheck_seconds`` (pools.py).
"""

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from celery import Celery, states
from dagster import DagsterEvent
from dagster._core.errors import DagsterError, DagsterSubprocessError
from dagster._core.events import EngineEventData
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.step import ExecutionStep
from dagster._utils.error import SerializableErrorInfo, serializable_error_info_from_exc_info
from dagster_celery.core_execution_loop import (
    DELEGATE_MARKER,
    _get_run_priority,
    _get_step_priority,
    _warn_on_priority_misuse,
)
from dagster_celery.executor import _submit_task
from dagster_celery.make_app import make_app
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_STEP_PRIORITY_TAG
from dagster_shared.serdes import deserialize_value
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dagster_team_celery.control import broker_full_message, is_broker_full
from dagster_team_celery.steps.pool_slots import PoolSlots
from dagster_team_celery.steps.step_task import use_pooled_connections

CONNECTION_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError)
# One unanswered inspection may only mean a busy machine; two in a row mean the task is gone.
MISSED_CHECKS_BEFORE_LOST = 2
# The metadata entry of each submission's engine event that names the step's Celery task: a
# resumed run finds its steps in flight by it.
TASK_ID_LABEL = "celery task id"


def submitted_task_ids(events: list[DagsterEvent]) -> dict[str, str]:
    """Each step's latest Celery task, from the run's submission events."""
    task_ids = {}
    for event in events:
        if not (event.is_engine_event and event.step_key and event.engine_event_data):
            continue
        entry = (event.engine_event_data.metadata or {}).get(TASK_ID_LABEL)
        if entry is not None:
            task_ids[event.step_key] = str(entry.value)
    return task_ids


@dataclass
class LoopSettings:
    poll_interval_seconds: float = 0.05
    worker_check_interval_seconds: float = 5.0
    lost_worker_timeout_seconds: float = 120.0
    broker_outage_timeout_seconds: float = 120.0
    termination_timeout_seconds: float = 15.0
    pool_recheck_seconds: float = 0.5


@dataclass
class InFlightStep:
    step: ExecutionStep
    queue: str
    task_id: str
    submitted_at: float
    attempt: int = 1
    worker: str | None = None  # the node name from the STARTED state, once known
    # Consecutive checks that found it nowhere: not running (once started), or neither in the
    # queue nor held by a live worker (before it started).
    missed_checks: int = 0
    lost_since: float | None = None


class BrokerUnreachable(DagsterError):
    """The broker stayed away longer than the loop rides out; the message names the fix."""


def read_states(app: Celery, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every task's meta in one MGET: {'status': ..., 'result': ...}; PENDING when absent."""
    backend = app.backend
    values = backend.mget([backend.get_key_for_task(task_id) for task_id in task_ids])
    return {
        task_id: backend.decode_result(value) if value else {"status": states.PENDING}
        for task_id, value in zip(task_ids, values, strict=True)
    }


def active_task_ids(app: Celery, workers: list[str]) -> set[str]:
    """Ids of the tasks these workers report running now."""
    replies = app.control.inspect(destination=workers, timeout=2.0, limit=len(workers)).active()
    return {task["id"] for tasks in (replies or {}).values() for task in tasks}


def queued_task_ids(app: Celery, queue: str) -> set[str]:
    """Ids of the tasks still in the broker's lists for ``queue`` (one per priority), taken by
    no worker yet. kombu's Redis channel names those lists (``_q_for_pri``, private; kombu is
    pinned) and prefixes LRANGE's key by hand: its client prefixes only the commands kombu uses."""
    found: set[str] = set()
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        client = channel.client
        prefix = getattr(client, "global_keyprefix", "") or ""
        for priority in channel.priority_steps:
            for raw in client.lrange(prefix + channel._q_for_pri(queue, priority), 0, -1):
                try:
                    found.add(json.loads(raw)["headers"]["id"])
                except (ValueError, KeyError, TypeError):
                    continue  # not a Celery message: not one of ours either
    return found


def held_task_ids(app: Celery, task_ids: list[str]) -> set[str]:
    """Of ``task_ids``, those a live worker holds: received (reserved), running or scheduled."""
    replies = app.control.inspect(timeout=2.0).query_task(*task_ids) or {}
    return {task_id for reply in replies.values() for task_id in reply}


def queue_consumers(app: Celery, queue: str) -> set[str]:
    active = app.control.inspect(timeout=1.0).active_queues() or {}
    return {worker for worker, queues in active.items() if any(q["name"] == queue for q in queues)}


def start_command(queue: str) -> str:
    return f"docker compose up -d {queue}-worker (or restart it under `make dev`)"


class StepOrchestrator:
    active: ActiveExecution

    def __init__(
        self, job_context: PlanOrchestrationContext, settings: LoopSettings, slots: PoolSlots
    ) -> None:
        self.context = job_context
        self.settings = settings
        self.slots = slots
        self.app = make_app(job_context.executor.app_args())
        self.default_priority = self.app.conf.task_default_priority
        self.default_queue = self.app.conf.task_default_queue
        self.in_flight: dict[str, InFlightStep] = {}
        self.unsubmitted: list[ExecutionStep] = []
        self.errors: dict[str, SerializableErrorInfo] = {}
        self.stopping = False
        self.stop_deadline = 0.0
        self.outage_since: float | None = None
        self.last_worker_check = time.monotonic()
        self.unserved_since: float | None = None

    def sort_key(self, step: ExecutionStep) -> int:
        step_priority = int(step.tags.get(DAGSTER_CELERY_STEP_PRIORITY_TAG, self.default_priority))
        return -1 * step_priority + -1 * _get_run_priority(self.context)

    def engine_event(
        self, message: str, step: ExecutionStep | None = None, **kwargs
    ) -> DagsterEvent:
        context = self.context.for_step(step) if step else self.context
        return DagsterEvent.engine_event(context, message, EngineEventData(**kwargs))

    @property
    def running(self) -> bool:
        if self.stopping:
            return bool(self.in_flight) and time.monotonic() < self.stop_deadline
        # After a worker-side error nothing new is submitted; in-flight steps drain first.
        return bool(self.in_flight) or not (self.errors or self.active.is_complete)

    def run(self, active_execution: ActiveExecution) -> Iterator[DagsterEvent]:
        self.active = active_execution
        while self.running:
            if self.active.check_for_interrupts():
                yield from self.stop()
            try:
                yield from self.collect_finished_steps()
                yield from self.active.plan_events_iterator(self.context)
                # "Step blocked by limit for pool ...": the UI shows which steps wait for a slot.
                yield from self.active.concurrency_event_iterator(self.context)
                if (
                    time.monotonic() - self.last_worker_check
                    >= self.settings.worker_check_interval_seconds
                ):
                    self.last_worker_check = time.monotonic()
                    yield from self.check_workers()
                if not (self.stopping or self.errors):
                    yield from self.submit_ready_steps()
            except CONNECTION_ERRORS as error:
                yield from self.ride_out_outage(error)
                continue
            if self.outage_since is not None:
                length, self.outage_since = time.monotonic() - self.outage_since, None
                yield self.engine_event(f"Reconnected to the Celery broker after {length:.1f}s.")
            time.sleep(self.settings.poll_interval_seconds)
        for step_key in self.in_flight:
            self.slots.release(step_key)
        if self.stopping and self.in_flight:
            yield self.engine_event(
                f"No worker confirmed the termination of step(s) {', '.join(self.in_flight)} "
                f"within {self.settings.termination_timeout_seconds:.0f}s; their tasks stay "
                "revoked, and a worker that receives one later skips it because the run ended."
            )
        if self.errors:
            raise DagsterSubprocessError(
                "During celery execution errors occurred in workers:\n"
                + "\n".join(f"[{key}]: {err.to_string()}" for key, err in self.errors.items()),
                subprocess_error_infos=list(self.errors.values()),
            )

    def stop(self) -> Iterator[DagsterEvent]:
        yield DagsterEvent.engine_event(
            self.context,
            "Celery executor: received termination signal - terminating running steps "
            f"(SIGTERM, then SIGKILL after the workers' grace period) and revoking queued ones: "
            f"{', '.join(self.in_flight) or 'none in flight'}.",
            EngineEventData.interrupted(list(self.in_flight)),
        )
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.termination_timeout_seconds
        self.active.mark_interrupted()
        for step in self.unsubmitted:  # claimed a slot, never submitted
            self.slots.release(step.key)
        self.unsubmitted.clear()
        if not self.in_flight:
            return
        task_ids = [flight.task_id for flight in self.in_flight.values()]
        try:
            self.app.control.revoke(task_ids, terminate=True, signal="SIGTERM")
        except CONNECTION_ERRORS as error:
            yield self.engine_event(
                f"Could not reach the Celery broker to terminate the running steps ({error}); "
                "they may run to the end, but their results are ignored."
            )

    def ride_out_outage(self, error: Exception) -> Iterator[DagsterEvent]:
        timeout = self.settings.broker_outage_timeout_seconds
        full = is_broker_full(error)
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            lost = "The broker is full" if full else "Lost the Celery broker or result backend"
            yield self.engine_event(f"{lost} ({error}); retrying for up to {timeout:.0f}s.")
        elif time.monotonic() - self.outage_since > timeout and full:
            # Full for the whole wait: no queue drained, so say which bound was hit and how to
            # find the queue that filled it.
            raise BrokerUnreachable(broker_full_message(self.default_queue, error)) from error
        elif time.monotonic() - self.outage_since > timeout:
            raise BrokerUnreachable(
                f"The Celery broker or result backend stayed unreachable for {timeout:.0f}s "
                f"({error}). Check that Redis is running and that DAGSTER_CELERY_BROKER_URL and "
                "DAGSTER_CELERY_BACKEND_URL point at it, then re-execute the run from failure."
            ) from error
        time.sleep(1.0)

    def collect_finished_steps(self) -> Iterator[DagsterEvent]:
        if not self.in_flight:
            return
        metas = read_states(self.app, [flight.task_id for flight in self.in_flight.values()])
        for step_key, flight in sorted(
            self.in_flight.items(), key=lambda item: self.sort_key(item[1].step)
        ):
            meta = metas[flight.task_id]
            status = meta["status"]
            if status == states.STARTED:
                flight.worker = (meta.get("result") or {}).get("hostname", flight.worker)
                continue
            if status not in states.READY_STATES:
                continue
            self.leave_flight(step_key)
            if self.stopping and status != states.SUCCESS:
                # Terminated: the plan keeps the step unfinished, so the run ends CANCELED.
                yield self.engine_event(
                    f'Step "{step_key}" was terminated ({status}).', flight.step
                )
                continue
            if status == states.SUCCESS:
                for serialized in meta["result"]:
                    event = deserialize_value(serialized, DagsterEvent)
                    yield event
                    self.active.handle_event(event)
            elif status == states.REVOKED:
                yield DagsterEvent.engine_event(
                    self.context.for_step(flight.step),
                    f'celery task for running step "{step_key}" was revoked.',
                    EngineEventData(marker_end=DELEGATE_MARKER),
                )
            else:
                self.errors[step_key] = self.task_failure(flight.task_id, meta)
            self.active.verify_complete(self.context, step_key)

    def leave_flight(self, step_key: str) -> None:
        """Every way a step stops being in flight ends here, so its pool slot is always freed:
        a step that failed in Celery, was revoked or terminated, or lost its worker returns no
        events, and Dagster frees slots only on events (see pools.py)."""
        del self.in_flight[step_key]
        self.slots.release(step_key)

    def task_failure(self, task_id: str, meta: dict[str, Any]) -> SerializableErrorInfo:
        try:
            self.app.AsyncResult(task_id).get(propagate=True, timeout=5)
        except Exception:
            return serializable_error_info_from_exc_info(sys.exc_info())
        return SerializableErrorInfo(f"Celery task {task_id} failed: {meta}", [], None)

    def submit(self, step: ExecutionStep, attempt: int = 1) -> InFlightStep:
        queue = step.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue)
        priority = _get_step_priority(self.context, step, self.default_priority)
        result = _submit_task(
            self.app, self.context, step, queue, priority, self.active.get_known_state()
        )
        flight = InFlightStep(step, queue, result.id, time.monotonic(), attempt)
        self.in_flight[step.key] = flight
        return flight

    def submit_ready_steps(self) -> Iterator[DagsterEvent]:
        self.unsubmitted.extend(self.active.get_steps_to_execute())
        while self.unsubmitted:
            step = self.unsubmitted[0]
            # A submission the broker refuses raises here and stays at the head of the list.
            flight = self.submit(step)
            self.unsubmitted.pop(0)
            yield self.engine_event(
                f'Submitting celery task for step "{step.key}" to queue "{flight.queue}".',
                step,
                marker_start=DELEGATE_MARKER,
                metadata={TASK_ID_LABEL: flight.task_id},
            )

    def reattach(self, active_execution: ActiveExecution) -> Iterator[DagsterEvent]:
        """Resume after the run's previous process died (run_task.py): replay the run's events,
        so finished steps stay done and earlier failures still count, then watch each step left
        in flight by its Celery task, queued, running or finished meanwhile. Only a step never
        submitted is submitted now; one whose worker died too is resubmitted by the usual
        checks. So a step runs at least once, and twice only if its worker died while it ran."""
        self.active = active_execution
        events = [
            record.dagster_event
            for record in self.context.instance.all_logs(self.context.run_id)
            if record.dagster_event is not None
        ]
        yield from events  # as Dagster's step-delegating executor does on resume
        possibly_in_flight = active_execution.rebuild_from_events(events)
        task_ids = submitted_task_ids(events)
        watched, submitted = [], []
        for step in possibly_in_flight:
            task_id = task_ids.get(step.key)
            if task_id is None:
                flight = self.submit(step)
                submitted.append(step.key)
                yield self.engine_event(
                    f'Submitting celery task for step "{step.key}" to queue "{flight.queue}" '
                    "(it was never submitted before the run's process died).",
                    step,
                    marker_start=DELEGATE_MARKER,
                    metadata={TASK_ID_LABEL: flight.task_id},
                )
                continue
            queue = step.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue)
            # Due for the first worker check at once: its worker may be gone too.
            due = time.monotonic() - self.settings.worker_check_interval_seconds - 1
            self.in_flight[step.key] = InFlightStep(step, queue, task_id, due)
            watched.append(step.key)
        done = {event.step_key for event in events if event.is_step_success}
        yield self.engine_event(
            f"Resumed the run: {len(done)} step(s) already succeeded and are not run again; "
            f"following {len(watched)} in flight by their Celery tasks "
            f"({', '.join(watched) or 'none'}); submitted {len(submitted)} that the previous "
            f"process never submitted ({', '.join(submitted) or 'none'}).",
            metadata={"steps succeeded before": len(done), "steps followed": len(watched)},
        )

    def check_workers(self) -> Iterator[DagsterEvent]:
        """Resubmit steps whose worker died; fail them when no worker comes back in time."""
        now = time.monotonic()
        started = [flight for flight in self.in_flight.values() if flight.worker]
        unstarted = [
            flight
            for flight in self.in_flight.values()
            if flight.worker is None
            and now - flight.submitted_at > self.settings.worker_check_interval_seconds
        ]
        if started:
            self.count_missing_started(started)
        consumers = {
            queue: queue_consumers(self.app, queue)
            for queue in {flight.queue for flight in [*started, *unstarted]}
        }
        served = [flight for flight in unstarted if consumers[flight.queue]]
        if served:
            self.count_missing_unstarted(served)
        lost = [
            flight
            for flight in [*started, *served]
            if flight.missed_checks >= MISSED_CHECKS_BEFORE_LOST
        ]
        for flight in lost:
            yield from self.handle_lost_step(flight, consumers[flight.queue], now)
        yield from self.handle_unserved_queues(
            [flight for flight in unstarted if not consumers[flight.queue]], now
        )

    def count_missing_started(self, started: list[InFlightStep]) -> None:
        running = active_task_ids(self.app, sorted({flight.worker for flight in started}))
        # A step may have finished between the state read and the inspection.
        latest = read_states(self.app, [flight.task_id for flight in started])
        for flight in started:
            gone = flight.task_id not in running and (
                latest[flight.task_id]["status"] not in states.READY_STATES
            )
            flight.missed_checks = flight.missed_checks + 1 if gone else 0

    def count_missing_unstarted(self, unstarted: list[InFlightStep]) -> None:
        """A step not started yet is in its queue, or held by a worker that took it. A worker
        killed after taking it, before starting it, leaves it in neither: its message waits in
        the broker's unacknowledged set for the visibility timeout (an hour), and the run with
        it. The queue is read first: a task only moves on from there (to a worker, to a
        result), so one that left it between the two reads is still found held, or finished."""
        queued: set[str] = set()
        for queue in {flight.queue for flight in unstarted}:
            queued |= queued_task_ids(self.app, queue)
        elsewhere = [flight.task_id for flight in unstarted if flight.task_id not in queued]
        held = held_task_ids(self.app, elsewhere) if elsewhere else set()
        latest = read_states(self.app, elsewhere) if elsewhere else {}
        for flight in unstarted:
            gone = (
                flight.task_id in latest
                and flight.task_id not in held
                and (latest[flight.task_id]["status"] == states.PENDING)
            )
            flight.missed_checks = flight.missed_checks + 1 if gone else 0

    def handle_lost_step(
        self, flight: InFlightStep, consumers: set[str], now: float
    ) -> Iterator[DagsterEvent]:
        timeout = self.settings.lost_worker_timeout_seconds
        if flight.lost_since is None:
            flight.lost_since = now
            who = (
                f"Celery worker {flight.worker}"
                if flight.worker
                else "A Celery worker that took it before starting it"
            )
            yield self.engine_event(
                f'{who} lost step "{flight.step.key}" (it died or was restarted); waiting up to '
                f'{timeout:.0f}s for a worker on queue "{flight.queue}" to run it again.',
                flight.step,
                metadata={"lost worker": flight.worker or "unknown (not started)"},
            )
        if consumers:
            self.app.control.revoke(flight.task_id)
            replacement = self.submit(flight.step, attempt=flight.attempt + 1)
            yield self.engine_event(
                f'Resubmitted step "{flight.step.key}" (attempt {replacement.attempt}) after '
                f"worker {flight.worker or '(gone before starting it)'} lost it; workers on queue "
                f'"{flight.queue}": {", ".join(sorted(consumers))}.',
                flight.step,
                marker_start=DELEGATE_MARKER,
                metadata={TASK_ID_LABEL: replacement.task_id},
            )
        elif now - flight.lost_since > timeout:
            self.leave_flight(flight.step.key)
            self.errors[flight.step.key] = SerializableErrorInfo(
                f"Celery worker {flight.worker or '(unknown)'} was lost with step "
                f'"{flight.step.key}", and no worker consumed queue "{flight.queue}" for '
                f"{timeout:.0f}s. Start the team's worker ({start_command(flight.queue)}) and "
                "re-execute the run from failure.",
                [],
                "LostCeleryWorker",
            )

    def handle_unserved_queues(
        self, unserved: list[InFlightStep], now: float
    ) -> Iterator[DagsterEvent]:
        if not unserved:
            self.unserved_since = None
            return
        timeout = self.settings.lost_worker_timeout_seconds
        queues = ", ".join(sorted({flight.queue for flight in unserved}))
        if self.unserved_since is None:
            self.unserved_since = now
            yield self.engine_event(
                f"No Celery worker is consuming queue(s) {queues}; steps wait for one for up to "
                f"{timeout:.0f}s."
            )
            return
        if now - self.unserved_since <= timeout:
            return
        for flight in unserved:
            self.leave_flight(flight.step.key)
            self.app.control.revoke(flight.task_id)
            self.errors[flight.step.key] = SerializableErrorInfo(
                f'No Celery worker consumed queue "{flight.queue}" for {timeout:.0f}s, so step '
                f'"{flight.step.key}" never started. Start the team\'s worker '
                f"({start_command(flight.queue)}) and re-execute the run.",
                [],
                "NoCeleryWorker",
            )


def team_celery_execution_loop(
    job_context: PlanOrchestrationContext, execution_plan: ExecutionPlan, settings: LoopSettings
) -> Iterator[DagsterEvent]:
    if execution_plan.step_keys_to_execute and not execution_plan.artifacts_persisted:
        raise DagsterSubprocessError(
            "Celery steps run in other processes: use an IO manager that persists outputs "
            "(the default fs_io_manager on the shared volume does)."
        )
    _warn_on_priority_misuse(job_context, execution_plan)
    # The run process records an event per submission and per step; pooled connections spare
    # it a new Postgres connection for each (see tasks.use_pooled_connections).
    use_pooled_connections(job_context.instance)
    with PoolSlots(
        job_context.instance, job_context.dagster_run, settings.pool_recheck_seconds
    ) as slots:
        orchestrator = StepOrchestrator(job_context, settings, slots)
        with execution_plan.start(
            retry_mode=job_context.executor.retries,
            sort_key_fn=orchestrator.sort_key,
            instance_concurrency_context=slots,
        ) as active_execution:
            if job_context.resume_from_failure:
                yield from orchestrator.reattach(active_execution)
            yield from orchestrator.run(active_execution)
