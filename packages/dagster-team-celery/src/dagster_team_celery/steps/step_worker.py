"""The Celery app a team's step worker runs (``dagster-team-worker steps``, or with its run
worker, ``dagster-team-worker``: worker_family.py).

Importing this module imports the team's Dagster code first (worker_startup.py), so a worker
that cannot run a team's steps never takes one off the queue.
"""

from dagster_celery.config import dict_wrapper
from dagster_celery.make_app import make_app

from dagster_team_celery.settings import (
    backend_url,
    broker_url,
    celery_settings,
    team_name,
    terminate_grace_seconds,
)
from dagster_team_celery.steps.step_task import create_execute_plan_task
from dagster_team_celery.workers.worker_startup import (
    LivenessFile,
    check_own_instance,
    import_team_code,
)

TEAM = team_name()
check_own_instance()
terminate_grace_seconds()  # a malformed setting stops the worker now, not at the first cancel
import_team_code(TEAM)

app = make_app(
    {
        "broker": broker_url(),
        "backend": backend_url(),
        "include": [],
        "config_source": dict_wrapper(celery_settings(queue=TEAM)),
    }
)
app.steps["consumer"].add(LivenessFile)
execute_plan = create_execute_plan_task(app)
