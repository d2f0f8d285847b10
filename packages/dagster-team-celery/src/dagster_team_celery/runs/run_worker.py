"""The Celery app a team's warm run worker runs (``dagster-team-worker runs``, or with its
step worker, ``dagster-team-worker``: worker_family.py).

Runs start here instead of in a fresh interpreter or container: importing this module imports
Dagster, Celery and the team's code once, before anything forks, and each run executes in a
pool process forked from the worker (run_task.py). The run worker consumes the team's run
queue (settings.run_queue), under the team's key prefix and Redis user, like its step workers.
"""

from dagster_celery.config import dict_wrapper
from dagster_celery.make_app import make_app

from dagster_team_celery.runs.run_task import create_execute_run_task
from dagster_team_celery.settings import (
    backend_url,
    broker_url,
    celery_settings,
    run_queue,
    run_terminate_grace_seconds,
    team_name,
    terminate_grace_seconds,
)
from dagster_team_celery.workers.worker_startup import (
    LivenessFile,
    check_own_instance,
    import_team_code,
)

# What a run imports beyond the team's code and its steps' modules: the run's execution and
# the team executor's orchestration loop.
RUN_MODULES = (
    "dagster._grpc.impl",
    "dagster._core.execution.api",
    "dagster_team_celery.steps.executor",
    "dagster_team_celery.steps.orchestration",
)

TEAM = team_name()
check_own_instance()
terminate_grace_seconds()  # malformed settings stop the worker now, not at the first cancel
run_terminate_grace_seconds()
import_team_code(TEAM, preload=RUN_MODULES)

app = make_app(
    {
        "broker": broker_url(),
        "backend": backend_url(),
        "include": [],
        "config_source": dict_wrapper(celery_settings(queue=run_queue(TEAM), team=TEAM)),
    }
)
app.steps["consumer"].add(LivenessFile)
execute_run = create_execute_run_task(app)
