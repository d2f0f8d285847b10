"""The task a team worker runs for each step: dagster-celery's ``execute_plan``, made safe to
deliver twice, and cheaper per step.

dagster-celery's task (dagster_celery/tasks.py, lines 39-41) rebuilds the Dagster instance and
reloads the team's definitions for every step. Here a worker process keeps one instance per
instance ref and one loaded repository per code pointer, so only its first step pays for them;
the worker's main process loads the repository before forking its pool (worker.py), so not
even that step does.

Late acknowledgement means a step can arrive again: Redis hands an unacknowledged message
out after the visibility timeout, and a pool process that dies mid-step has its message
requeued. The task keeps dagster-celery's name and arguments (orchestrators submit it with
dagster-celery's own ``_submit_task``) and adds one check before executing:

- the run already ended: nothing is executed, nothing is reported;
- the step already succeeded in this run: nothing is executed, and the events the first
  delivery recorded are returned, so an orchestrator still waiting on this task sees the
  step finish instead of an unknown state.

A task message is not trusted: anyone who can write to the broker can write one. The worker
runs only steps whose code pointer is its own team's module (never a Python file named in the
message), and it records events in its own instance (DAGSTER_HOME/dagster.yaml), never the one
the message's instance ref names.
"""

import functools
import gc
import importlib
import logging
import os
import sys
from typing import Any

import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.pool
from celery import Celery, Task
from dagster import DagsterEventType, DagsterInstance, JobDefinition
from dagster import _check as check
from dagster._core.code_pointer import (
    AutoloadDefsModuleCodePointer,
    CodePointer,
    ModuleCodePointer,
    PackageCodePointer,
)
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.definitions.repository_definition import RepositoryDefinition
from dagster._core.events import EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value, unpack_value
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.core_execution_loop import DELEGATE_MARKER
from dagster_celery.executor import CeleryExecutor

from dagster_team_celery.steps.termination import TerminableStepRequest, exit_after_interrupted_step

logger = logging.getLogger(__name__)

POOL_RECYCLE_SECONDS = 3600
POOL_OVERFLOW = 5

# Per worker process: what dagster-celery would otherwise rebuild for every step.
_instances: dict[str, DagsterInstance] = {}
# The one module this worker's steps may come from; set when the worker imports it.
_served_module: list[str] = []


class ForeignTaskError(Exception):
    """A task message asked this worker to run code that is not its team's."""


def serve_only(module_name: str) -> None:
    _served_module[:] = [module_name]


def check_own_code(recon_job: ReconstructableJob, task: str = "step") -> None:
    """Refuse, before anything is imported, a ``task`` (step or run) whose code is not this
    team's module."""
    check_own_pointer(recon_job.repository.pointer, task)


def check_own_run(dagster_run: DagsterRun) -> None:
    """Refuse a step of a run that is not this team's: a message naming its own code but
    another team's run id would otherwise write events into that run (the run worker checks
    the run's own code in the same way)."""
    origin = dagster_run.job_code_origin
    if origin is None:
        raise ForeignTaskError(
            f"Refused a step of run {dagster_run.run_id}: the run names no code, so it cannot be"
            " this team's."
        )
    check_own_pointer(origin.repository_origin.code_pointer, f"step of run {dagster_run.run_id}")


def check_own_pointer(pointer: CodePointer, task: str) -> None:
    module_pointers = (ModuleCodePointer, PackageCodePointer, AutoloadDefsModuleCodePointer)
    module = getattr(pointer, "module", None) if isinstance(pointer, module_pointers) else None
    if not _served_module or module != _served_module[0]:
        raise ForeignTaskError(
            f"Refused a {task} whose code is {pointer.describe()}: this worker runs only its own"
            f" team's module {(_served_module or ['(none loaded)'])[0]!r}. A task naming other"
            " code was sent to this team's queue by something that is not this team's run."
        )


def own_instance(message_ref: InstanceRef | None) -> DagsterInstance:
    """The worker's own instance. The message's ref is compared, never used: it could point
    the step's events (and its storage) anywhere."""
    if "own" not in _instances:
        instance = DagsterInstance.get()
        use_pooled_connections(instance)
        _instances["own"] = instance
    instance = _instances["own"]
    if message_ref is not None and serialize_value(message_ref) != serialize_value(
        instance.get_ref()
    ):
        logger.warning("A step's message named another instance; using this worker's own.")
    return instance


_repositories: dict[str, RepositoryDefinition] = {}
_jobs: dict["CachedReconstructableJob", JobDefinition] = {}


def use_pooled_connections(instance: DagsterInstance) -> None:
    """dagster-postgres opens a new connection for every event it stores (NullPool): a backend
    fork and a SCRAM handshake, about ten times a step, measured at 42% of a worker's time.
    Long-lived processes (workers, a run's orchestrator) keep pooled connections instead, as
    the webserver does, checked before each use."""
    ping_pooled_connections()
    instance.optimize_for_webserver(
        statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_OVERFLOW
    )


@functools.cache
def ping_pooled_connections() -> None:
    """Check a pooled connection before use, so one outlived by a Postgres restart is
    replaced instead of failing a step (SQLAlchemy's documented pessimistic disconnect
    handling, which dagster-postgres's pooled engines do not turn on)."""

    @sqlalchemy.event.listens_for(sqlalchemy.pool.QueuePool, "checkout")
    def ping(dbapi_connection, _record, _proxy) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        except Exception as error:
            raise sqlalchemy.exc.DisconnectionError() from error
        finally:
            cursor.close()


def repository_key(repository: ReconstructableRepository) -> str | None:
    # Only plain pointers are cached; load data (cacheable assets) must be honoured as given.
    if repository.repository_load_data is not None:
        return None
    return serialize_value(repository.pointer)


def cached_repository(repository: ReconstructableRepository, key: str) -> RepositoryDefinition:
    if key not in _repositories:
        # Logged so a worker's log shows whether its pool processes started warm.
        logger.info("Loading %s in worker process %d", repository.pointer.describe(), os.getpid())
        _repositories[key] = repository.get_definition()
    return _repositories[key]


# What a step imports on first use beyond the team's own code, measured in a pool process: the
# instance's Postgres storage, the fs IO manager's UPath, the compute log manager, and W&B for
# teams that use the shared IO manager (which imports wandb only when it reads or writes).
STEP_MODULES = (
    "dagster_postgres",
    "dagster._core.storage.upath_io_manager",
    "dagster._core.storage.local_compute_log_manager",
)
WANDB_STEP_MODULES = ("wandb", "wandb.sdk.artifacts.artifact")


def warm_up_before_fork(
    repository: ReconstructableRepository, preload: tuple[str, ...] = ()
) -> None:
    """Load a repository once, before the pool forks, so every pool process starts warm.

    The modules its steps import are loaded here too, so they are shared by the pool processes
    instead of loaded again by each, and no first step pays for them. gc.freeze() then keeps
    the collector from writing to those objects in the children, which would copy their pages.
    """
    key = repository_key(repository)
    if key is not None:
        cached_repository(repository, key)
    step_modules = STEP_MODULES + preload
    if "dagster_wandb_io" in sys.modules:
        step_modules += WANDB_STEP_MODULES
    for name in step_modules:
        try:
            importlib.import_module(name)
        except ImportError:
            logger.info("Not preloading %s: not installed", name)
    gc.freeze()


class CachedReconstructableJob(ReconstructableJob):
    """A ReconstructableJob whose repository is loaded once per worker process.

    Upstream caches the last definition only (``lru_cache(maxsize=1)``), so a worker serving
    several of a team's jobs would reload the team's code at every switch.
    """

    def get_repository_definition(self) -> RepositoryDefinition | None:
        key = repository_key(self.repository)
        if key is None:
            return super().get_repository_definition()
        return cached_repository(self.repository, key)

    def get_definition(self) -> JobDefinition:
        if self not in _jobs:
            _jobs[self] = check.not_none(self.get_repository_definition()).get_maybe_subset_job_def(
                self.job_name, self.op_selection, self.asset_selection, self.asset_check_selection
            )
        return _jobs[self]


def job_for(executable_dict: dict[str, Any]) -> CachedReconstructableJob:
    return CachedReconstructableJob(**ReconstructableJob.from_dict(executable_dict)._asdict())


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
    # Not shared (Celery's default): a step worker and a run worker forked from one parent hold
    # both apps, and each must know only its own task.
    @app.task(bind=True, name=TASK_EXECUTE_PLAN_NAME, Request=TerminableStepRequest, shared=False)
    def execute_plan(
        self: Task, execute_step_args_packed: dict[str, Any], executable_dict: dict[str, Any]
    ) -> list[str]:
        args = unpack_value(execute_step_args_packed, as_type=ExecuteStepArgs)
        recon_job = job_for(executable_dict)
        check_own_code(recon_job)
        instance = own_instance(args.instance_ref)
        dagster_run = instance.get_run_by_id(args.run_id)
        check.invariant(dagster_run, f"Could not load run {args.run_id}")
        assert dagster_run is not None
        check_own_run(dagster_run)
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
        with exit_after_interrupted_step():
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
