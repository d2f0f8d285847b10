"""The platform's wiring of one team, as a dg component a team declares in one YAML file.

    # src/<team>/defs/platform/defs.yaml
    type: dagster_team_celery.component.TeamPlatformComponent
    attributes:
      team: bakery

It gives every job of the code location the team's Celery executor (each step on the team's
own queue, or in-process under DAGSTER_TEAM_IN_PROCESS=1 for `dg dev`), the platform's home
for step outputs (the object store unless DAGSTER_STEP_OUTPUTS=volume; object_store.py), and
adds the probe jobs the platform's tests and benchmarks launch. Teams carry no copy of this
code, so a platform change reaches every team with its next image.
"""

from __future__ import annotations

import dagster as dg

from dagster_team_celery.platform_bucket import step_output_io_manager
from dagster_team_celery.probes import build_probe_jobs
from dagster_team_celery.steps.executor import team_celery_executor


class TeamPlatformComponent(dg.Component, dg.Model, dg.Resolvable):
    """Runs every job of this code location on the team's own Celery queue, with probe jobs."""

    team: str

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        executor = team_celery_executor(self.team)
        io_manager = step_output_io_manager(self.team)
        return dg.Definitions(
            executor=executor,
            jobs=build_probe_jobs(executor),
            resources={"io_manager": io_manager} if io_manager is not None else {},
        )
