"""The two stacks the benchmarks compare: the platform, and vanilla Dagster + dagster-celery.

Vanilla means the same versions with no tuning: the default 5 s dequeue interval, the stock
DefaultRunLauncher, step outputs and captured logs on the local volume (fs_io_manager and the
LocalComputeLogManager, where the platform uses its object store), dagster-celery's own executor
with nothing but the team's queue (the code servers load the team's definitions through
bench/vanilla/vanilla_definitions.py, which swaps the executor), and workers started the stock
way (`dagster-celery worker start -A dagster_celery.app`).
"""

import os
from pathlib import Path

import yaml
from celery import Celery

from dagster_team_celery.platform_bucket import STEP_OUTPUTS_ENV
from dagster_team_celery.settings import BACKEND_URL_ENV, BROKER_URL_ENV
from devstack import config
from devstack.local_stack import LocalStack, StackSettings
from devstack.processes import Service

VANILLA_LAUNCHER = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}
# Holds only vanilla_definitions.py, so nothing else on the team's path is shadowed.
VANILLA_PYTHONPATH = Path(__file__).resolve().parent / "vanilla"
VANILLA_MODULE = "vanilla_definitions"
STOCK_COMPUTE_LOGS = {
    "module": "dagster._core.storage.local_compute_log_manager",
    "class": "LocalComputeLogManager",
    "config": {"base_dir": {"env": "DAGSTER_COMPUTE_LOGS_DIR"}},
}
TUNED_COORDINATOR_KEYS = ("dequeue_interval_seconds", "dequeue_use_threads", "dequeue_num_workers")


class PlatformStack(LocalStack):
    label = "platform"


class VanillaStack(LocalStack):
    label = "vanilla"

    @property
    def warm_runs(self) -> bool:
        return False

    def instance_yaml(self) -> str:
        instance = yaml.safe_load(config.local_instance_yaml(self.root))
        instance["run_launcher"] = VANILLA_LAUNCHER
        coordinator = instance["run_coordinator"]["config"]
        for key in TUNED_COORDINATOR_KEYS:
            coordinator.pop(key, None)
        instance["compute_logs"] = STOCK_COMPUTE_LOGS
        return yaml.safe_dump(instance, sort_keys=False)

    def dagster_env(self) -> dict[str, str]:
        return {**super().dagster_env(), STEP_OUTPUTS_ENV: "volume"}

    def team_env(self, team: str) -> dict[str, str]:
        # Code servers, runs and workers all import the job through VANILLA_MODULE.
        return {**super().team_env(team), "PYTHONPATH": str(VANILLA_PYTHONPATH)}

    def team_redis_env(self, team: str) -> dict[str, str]:
        # Stock dagster-celery puts its keys at the top of Redis, which a team's Redis user
        # (confined to team:<team>:) may not touch, so vanilla uses the operator's.
        base = self.redis_base_url()
        return {BROKER_URL_ENV: f"{base}/0", BACKEND_URL_ENV: f"{base}/1"}

    def _code_server(self, team: str) -> Service:
        service = super()._code_server(team)
        service.argv[service.argv.index(f"{team}.definitions")] = VANILLA_MODULE
        return service

    def _worker(self, team: str) -> Service:
        # The stock wrapper runs `celery` from PATH, as in an image whose venv is on PATH.
        team_bin = config.team_bin(team, "celery", self.root).parent
        env = {**self.team_env(team), "PATH": f"{team_bin}:{os.environ['PATH']}"}
        worker_config = self.state / f"{team}-celery.yaml"
        worker_config.write_text(
            yaml.safe_dump(
                {
                    "execution": {
                        "config": {
                            "broker": env["DAGSTER_CELERY_BROKER_URL"],
                            "backend": env["DAGSTER_CELERY_BACKEND_URL"],
                        }
                    }
                }
            )
        )
        app = Celery(broker=env["DAGSTER_CELERY_BROKER_URL"])

        def ready() -> bool:
            queues = app.control.inspect(timeout=1.0).active_queues() or {}
            return any(q["name"] == team for worker in queues.values() for q in worker)

        return self._service(
            f"{team}-worker",
            [
                config.team_bin(team, "dagster-celery", self.root),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-q",
                team,
                "-y",
                worker_config,
            ],
            env,
            ready=ready,
            cwd=config.team_dir(team, self.root),
        )


def start(kind: type[LocalStack], name: str, state_root: Path) -> LocalStack:
    stack = kind(StackSettings(name=name, fresh=True, state_root=state_root, flower=False))
    stack.start(timeout=300)
    return stack
