"""Captured step and run logs in the object store, under the team whose run they belong to.

dagster-aws's S3ComputeLogManager keeps every log under one prefix, so every process that
writes logs may overwrite or delete any team's. Here a run's logs go to
``compute-logs/<team>/storage/<run id>/...``, which only that team's object-store identity may
write (deploy/object_store_identities.py); the webserver's identity reads every team's.

- A team's processes (DAGSTER_TEAM set) write under their own team: they run only their own
  team's runs, and their identity could write nowhere else.
- The webserver and the platform's own processes find a run's team from the run itself (its
  code location), once per run.
- Logs that belong to no run (sensor and schedule ticks, whose key starts with the repository's
  name, not a run id) go to ``compute-logs/_ticks/``, which every team writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

from dagster_team_celery.deploy.object_store_identities import TICKS_FOLDER
from dagster_team_celery.settings import TEAM_ENV

# Dagster's run ids are uuid4 strings.
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NO_LOCATION = "_no_location"
LOCATION_TAG = "dagster/code_location"


class TeamS3ComputeLogManager(S3ComputeLogManager):
    """S3ComputeLogManager with the run's team in every key (dagster.yaml's compute_logs)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._team_by_run: dict[str, str] = {}

    def _resolve_path_for_namespace(self, namespace: Sequence[str]) -> list[str]:
        return [self._s3_prefix, self.team_folder(namespace), "storage", *namespace]

    def team_folder(self, namespace: Sequence[str]) -> str:
        if not namespace or not RUN_ID.fullmatch(namespace[0]):
            return TICKS_FOLDER
        own = os.environ.get(TEAM_ENV, "").strip()
        if own:
            return own
        run_id = namespace[0]
        if run_id not in self._team_by_run:
            team = self._run_location(run_id)
            if team is None:
                # Not cached: the run may not be stored yet.
                return NO_LOCATION
            self._team_by_run[run_id] = team
        return self._team_by_run[run_id]

    def _run_location(self, run_id: str) -> str | None:
        if not self.has_instance:
            return None
        run = self._instance.get_run_by_id(run_id)
        if run is None:
            return None
        if run.remote_job_origin is not None:
            return run.remote_job_origin.location_name
        return run.tags.get(LOCATION_TAG, NO_LOCATION)
