"""Imported once, in the forkserver process of forkserver_code_server, before any run forks.

Loads what every run process would otherwise import afresh: dagster, dagster_celery,
dagster_team_celery and the team's definitions (PROTO_DEFS_MODULE), then warms the repository
definition as the Celery workers do (dagster_team_celery.steps.step_task.warm_up_before_fork,
which also imports the step modules and gc.freeze()s), and makes
ReconstructableRepository.get_definition answer from that warm definition, so a forked run does
not load the team's code again.

multiprocessing's forkserver swallows an ImportError from a preload module and dies on any
other exception, so every failure here is caught and printed instead: a failed preload means
cold runs, not no runs.
"""

import os
import sys
import threading
import time
import traceback

DEFS_MODULE_ENV = "PROTO_DEFS_MODULE"
TRACE_ENV = "PROTO_TRACE_RUN_IMPORTS"  # log what each run still imports after the fork
EXTRA_ENV = "PROTO_EXTRA_PRELOAD"  # comma-separated modules to import as well
# What a probe_ping run still imported after the fork with only the above preloaded (traced with
# PROTO_TRACE_RUN_IMPORTS): the Celery executor's broker/backend clients, Postgres, UPath.
RUN_MODULES = (
    "psycopg2",
    "dagster_postgres",
    "kombu.transport.redis",
    "celery.backends.redis",
    "celery.app.amqp",
    "upath",
    "fsspec.implementations.local",
    "dotenv",
    "psycopg2.extras",
    "upath.implementations.local",
    "dagster_celery.tasks",
    "multiprocessing.queues",
    "multiprocessing.synchronize",
)

_warm: dict[str, object] = {}
preloaded_modules: frozenset[str] = frozenset()


def log(message: str) -> None:
    print(f"[forkserver_preload] pid {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _install_cache() -> None:
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from dagster_team_celery.steps import step_task

    original = ReconstructableRepository.get_definition

    def get_definition(self):
        data = self.repository_load_data
        # Load data that only names the location (the code server's own) changes nothing the
        # warm definition lacks; anything else is loaded as given.
        plain = data is None or not (
            data.cacheable_asset_data or data.reconstruction_metadata or data.defs_state_info
        )
        if plain:
            key = step_task.repository_key(self._replace(repository_load_data=None))
            if key in _warm:
                return _warm[key]
            log(f"warm repository cache miss for {self.pointer.describe()}")
        return original(self)

    ReconstructableRepository.get_definition = get_definition


def _trace_run_imports() -> None:
    """Wrap the run's entry point (resolved by name when the child unpickles its target)."""
    from dagster._grpc import impl

    original = impl.start_run_in_subprocess

    def start_run_in_subprocess(*args, **kwargs):
        began = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            new = sorted(set(sys.modules) - preloaded_modules)
            tops = sorted({".".join(name.split(".")[:2]) for name in new})
            log(
                f"run done in {time.monotonic() - began:.2f}s; imported {len(new)} modules "
                f"after the fork, packages: {', '.join(tops)}"
            )

    start_run_in_subprocess.__qualname__ = original.__qualname__
    start_run_in_subprocess.__module__ = original.__module__
    impl.start_run_in_subprocess = start_run_in_subprocess


def preload() -> None:
    global preloaded_modules
    began = time.monotonic()
    import dagster
    import dagster._grpc.impl  # noqa: F401
    import dagster_celery  # noqa: F401
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    import dagster_team_celery.steps.executor  # noqa: F401
    from dagster_team_celery.steps import step_task

    imported = time.monotonic()
    extra = [*RUN_MODULES, *filter(None, os.environ.get(EXTRA_ENV, "").split(","))]
    for name in extra:
        try:
            __import__(name)
        except Exception:
            log(f"could not preload {name}:\n{traceback.format_exc()}")
    module = os.environ.get(DEFS_MODULE_ENV)
    if module:
        __import__(module)
        # The pointer the code server hands each run: its module, the `defs` attribute, and
        # the code server's working directory (the forkserver inherits its cwd).
        repository = ReconstructableRepository.for_module(module, "defs", os.getcwd())
        _install_cache()
        step_task.warm_up_before_fork(repository)  # loads it, imports the step modules, gc.freeze()
        _warm.update(
            {
                step_task.repository_key(repository): step_task._repositories[
                    step_task.repository_key(repository)
                ]
            }
        )
    if os.environ.get(TRACE_ENV):
        _trace_run_imports()
    preloaded_modules = frozenset(sys.modules)
    threads = [t.name for t in threading.enumerate()]
    log(
        f"imports {imported - began:.2f}s, definitions {time.monotonic() - imported:.2f}s, "
        f"{len(sys.modules)} modules, threads at fork time: {threads}"
    )


try:
    preload()
except BaseException:
    log(f"preload failed, runs will start cold:\n{traceback.format_exc()}")
