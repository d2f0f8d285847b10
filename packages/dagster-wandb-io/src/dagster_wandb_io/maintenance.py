"""The platform's own code location: jobs that keep shared state healthy for every team.

Served by the `platform-code` service (`--module-name dagster_wandb_io.maintenance`), from the
platform image, so cache eviction never depends on any team's code loading. Its runs use
Dagster's default executor, in their own container (or process, in local mode), not a team's
Celery queue.
"""

import dagster as dg

from dagster_wandb_io.eviction import make_cache_eviction_schedule

# Hourly; `dagster-wandb-io cache evict` does the same by hand from any team's container.
cache_eviction_schedule = make_cache_eviction_schedule(running=True)

defs = dg.Definitions(schedules=[cache_eviction_schedule])
