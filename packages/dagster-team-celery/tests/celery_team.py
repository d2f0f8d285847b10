"""A team on a real Redis and a real Celery worker, with runs started as their own processes.

The workers are the platform's (``dagster-team-worker``); the run process calls
``execute_job`` on the team's job, so the platform's execution loop orchestrates it exactly as
in a run launched by the daemon. The instance is SQLite in a temporary DAGSTER_HOME, which
every process of the test shares.
"""

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dagster_team_celery.workers.liveness import role_liveness_path
from dagster_team_celery.workers.worker_cli import worker_argv
from dagster_wandb_io.keys import signing_environment

TEAM = "stopteam"

TEAM_CODE = """
import os
import time

import dagster as dg

from dagster_team_celery.steps.executor import team_celery_executor
from dagster_team_celery.probes import build_probe_jobs
from dagster_wandb_io import WandbArtifactsIOManager, WandbResource


class SleepConfig(dg.Config):
    seconds: float = 60.0
    pid_file: str = ""
    # Swallow Dagster's interrupt, as user code stuck in C or catching everything would.
    ignore_terminate: bool = False


def sleep_for(config: SleepConfig) -> int:
    if config.pid_file:
        with open(config.pid_file, "w") as pid_file:
            pid_file.write(str(os.getpid()))
    deadline = time.monotonic() + config.seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:
            if not config.ignore_terminate:
                raise
    return 1


@dg.op
def sleeper(config: SleepConfig) -> int:
    return sleep_for(config)


@dg.op(
    out=dg.Out(
        io_manager_key="wandb_artifacts_manager",
        metadata={"wandb_artifact_configuration": {"name": "model"}},
    )
)
def model(config: SleepConfig) -> dict:
    # Published as a W&B artifact when it returns, after the sleep.
    return {"weights": sleep_for(config), "pid": os.getpid()}


executor = team_celery_executor("stopteam")

# A constant the warm-run test changes, to see which code a run's step executes.
GREETING = "first"


@dg.op
def greet(context: dg.OpExecutionContext) -> str:
    context.log.info(f"greeting: {GREETING}")
    return GREETING


@dg.job(executor_def=executor)
def greet_job():
    greet()


@dg.job(executor_def=executor)
def sleep_job():
    sleeper()


@dg.op
def after_sleep(context: dg.OpExecutionContext, slept: int) -> int:
    context.log.info("the step after the sleep ran")
    return slept


@dg.job(executor_def=executor)
def sleep_then_step_job():
    after_sleep(sleeper())


@dg.job(executor_def=executor)
def publish_job():
    model()


@dg.definitions
def defs():
    return dg.Definitions(
        jobs=[
            sleep_job,
            sleep_then_step_job,
            publish_job,
            greet_job,
            *build_probe_jobs(executor),
        ],
        resources={
            "wandb_artifacts_manager": WandbArtifactsIOManager(
                wandb_resource=WandbResource(), entity="stopteam", project="models"
            )
        },
    )
"""

INSTANCE_YAML = """
telemetry:
  enabled: false
concurrency:
  pools:
    granularity: op
    default_limit: 1
"""

RUN_SCRIPT = """
import json, sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

repository = ReconstructableRepository.for_module("stopteam_code", "defs", sys.argv[1])
job = ReconstructableJob(repository, sys.argv[2])
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(job, instance, run_config=json.loads(sys.argv[3]), raise_on_error=False)
    print("STATUS", instance.get_run_by_id(result.run_id).status.value, flush=True)
"""


@dataclass
class CeleryTeam:
    root: Path
    redis_url: str
    worker: subprocess.Popen | None = None
    run_worker: subprocess.Popen | None = None
    runs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @functools.cached_property
    def signing_env(self) -> dict[str, str]:
        """One key for the team's processes, made once: a second would replace the first."""
        return signing_environment(self.root, TEAM, [TEAM])

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_TEAM": TEAM,
            "DAGSTER_TEAM_MODULE": "stopteam_code",
            "DAGSTER_CELERY_BROKER_URL": f"{self.redis_url}/0",
            "DAGSTER_CELERY_BACKEND_URL": f"{self.redis_url}/1",
            "DAGSTER_CELERY_LIVENESS_FILE": str(self.root / "alive"),
            "PYTHONPATH": str(self.root),
            "DAGSTER_WANDB_IO_BASE_DIR": str(self.root / "artifact-cache"),
            **self.signing_env,
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
        }

    def write_code(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(INSTANCE_YAML)
        (self.root / "stopteam_code.py").write_text(TEAM_CODE)
        (self.root / "run_job.py").write_text(textwrap.dedent(RUN_SCRIPT))

    def start_worker(self, *roles: str, **env: str) -> None:
        """The team's workers (``dagster-team-worker``): its step worker, unless ``roles``
        names others ("runs" for its warm run worker, or both: one preloaded parent)."""
        self.worker = self.start_workers(roles or ("steps",), "worker.log", env)

    def start_run_worker(self) -> None:
        """The team's warm run worker alone (``dagster-team-worker runs``), on the same Redis."""
        self.run_worker = self.start_workers(("runs",), "run-worker.log", {})

    def start_workers(self, roles: tuple[str, ...], log_name: str, env: dict) -> subprocess.Popen:
        alive = [role_liveness_path(role, self.root / "alive") for role in roles]
        for path in alive:
            path.unlink(missing_ok=True)
        log = (self.root / log_name).open("ab")
        process = subprocess.Popen(
            worker_argv(*roles), env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(
            lambda: all(path.exists() for path in alive),
            WORKER_READY_SECONDS,
            lambda: (
                f"{' and '.join(roles)} never became ready:\n"
                + (self.root / log_name).read_text(errors="replace")[-4000:]
            ),
        )
        return process

    def stop_run_worker(self) -> None:
        if self.run_worker is not None and self.run_worker.poll() is None:
            self.run_worker.terminate()  # warm shutdown: the run in flight finishes first
            self.run_worker.wait(60)

    def kill_worker(self) -> None:
        """SIGKILL the worker and its pool, as when its container or host dies."""
        import psutil

        assert self.worker is not None
        parent = psutil.Process(self.worker.pid)
        for process in [*parent.children(recursive=True), parent]:
            process.kill()
        self.worker.wait(10)

    def run_messages(self) -> str:
        """Every message the latest run logged: engine events, failures, step logs."""
        with self.instance() as instance:
            run_id = instance.get_runs(limit=1)[0].run_id
            lines = []
            for entry in instance.all_logs(run_id):
                lines.append(entry.message or "")
                error = getattr(
                    entry.dagster_event and entry.dagster_event.event_specific_data, "error", None
                )
                if error is not None:
                    lines.append(error.to_string())
            return "\n".join(lines)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGQUIT)  # cold shutdown: tests leave no step behind
            self.worker.wait(30)

    def worker_log(self) -> str:
        return (self.root / "worker.log").read_text(errors="replace")[-4000:]

    def start_run(self, job: str, run_config: dict) -> subprocess.Popen:
        import json

        process = subprocess.Popen(
            [
                sys.executable,
                str(self.root / "run_job.py"),
                str(self.root),
                job,
                json.dumps(run_config),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.runs.append(process)
        return process

    def published_artifacts(self) -> list[str]:
        from dagster_wandb_io.cache import Layout
        from dagster_wandb_io.index import OfflineIndex

        return OfflineIndex(Layout(self.root / "artifact-cache")).names("stopteam", "models")

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def terminate_run(self, process: subprocess.Popen) -> None:
        """What DefaultRunLauncher.terminate does: mark the run CANCELING, then interrupt it."""
        with self.instance() as instance:
            run = wait_for(
                lambda: next(iter(instance.get_runs(limit=1)), None), STARTED_WITHIN_SECONDS
            )
            instance.report_run_canceling(run)
        process.send_signal(signal.SIGINT)

    def active_tasks(self) -> list[dict]:
        """The worker's running tasks, each with the pid of the pool process running it."""
        from dagster_team_celery.control import team_app

        app = team_app(TEAM, broker=f"{self.redis_url}/0", backend=f"{self.redis_url}/1")
        try:
            # One worker here: answer on its reply rather than always waiting out the timeout.
            replies = app.control.inspect(timeout=2.0, limit=1).active() or {}
        finally:
            app.close()
        return [task for tasks in replies.values() for task in tasks]

    def cleanup(self) -> None:
        for process in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.stop_worker()
        self.stop_run_worker()


# A hang guard: a worker is ready in seconds alone, but `make test` runs its lanes on two cores
# and a worker importing Dagster took over 90 s there (load average about 40).
WORKER_READY_SECONDS = 300
# The same kind of hang guard for a run or step to start: at load average 40 a run process
# importing Dagster and submitting its first step took over 60 s (a fresh-clone CI run).
STARTED_WITHIN_SECONDS = 300


def wait_for(predicate, timeout: float, describe=lambda: "condition never held"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"after {timeout:.0f}s: {describe()}")
