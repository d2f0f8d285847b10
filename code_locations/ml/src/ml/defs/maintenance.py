"""Keeps the shared W&B artifact cache within its retention; hosted here for every team.

The schedule carries its job (dagster_wandb_io_cache_eviction), which can also be launched
by hand; `dagster-wandb-io cache evict` does the same from any team's container.
"""

from dagster_wandb_io import make_cache_eviction_schedule

cache_eviction_schedule = make_cache_eviction_schedule(running=True)
