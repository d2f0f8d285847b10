"""Per-team Celery queues for Dagster: the executor teams use, the workers they run, how runs
start and survive, and what deployments need.

- ``runs/``: how a run starts and survives (launchers, the warm run task, heartbeat, resume);
- ``steps/``: how a run's steps run (executor, orchestration loop, step task, Terminate, pools);
- ``workers/``: what keeps a team's workers alive (``dagster-team-worker``, health);
- ``deploy/``: what only deployments use (entrypoint, Redis ACL, code-server check, Flower);
- beside them, what all share: ``settings``, ``control`` (a team's Celery client),
  ``platform_bucket`` (the object store), ``component`` (what a team declares), ``probes``.

Kept free of heavy imports: the worker health check imports this package every few seconds.
"""

import importlib.abc
import sys

# Modules that moved into the sub-packages above (0.2): an old path fails with the new one.
MOVED = {
    "run_isolation": "runs.isolation",
    "warm_run_launcher": "runs.warm_launcher",
    "run_launcher": "runs.container_launcher",
    "run_credentials": "runs.credentials",
    "run_task": "runs.run_task",
    "run_heartbeat": "runs.heartbeat",
    "run_worker": "runs.run_worker",
    "executor": "steps.executor",
    "orchestration": "steps.orchestration",
    "tasks": "steps.step_task",
    "termination": "steps.termination",
    "pools": "steps.pool_slots",
    "step_outputs": "steps.outputs",
    "worker": "steps.step_worker",
    "worker_cli": "workers.worker_cli",
    "worker_family": "workers.worker_family",
    "worker_startup": "workers.worker_startup",
    "liveness": "workers.liveness",
    "healthcheck": "workers.worker_health",
    "service_entrypoint": "deploy.service_entrypoint",
    "redis_acl": "deploy.redis_acl",
    "code_server_health": "deploy.code_server_health",
    "flower_app": "deploy.flower_app",
    "every_team_events": "deploy.flower_events",
    "object_store": "platform_bucket",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Consulted after every other finder: a module still named by its old path (in a
    dagster.yaml, a compose command, a team's import) fails with where it went."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        package, _, name = fullname.rpartition(".")
        if package == __name__ and name in MOVED:
            raise ModuleNotFoundError(
                f"{fullname} moved to {__name__}.{MOVED[name]}: use that name (in imports, "
                "in dagster.yaml's module: entries and in commands such as celery -A).",
                name=fullname,
            )
        return None


if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(MovedModuleFinder())
