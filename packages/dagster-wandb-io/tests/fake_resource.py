"""WandbResource whose online client is the in-memory FakeCloud (dagster import kept apart
so that spawned worker processes stay light)."""

from typing import Any

from dagster_wandb_io import WandbResource

from helpers import CURRENT_FAKE


class FakeWandbResource(WandbResource):
    def get_client(self, layout: Any) -> Any:
        self.require_api_key()
        return CURRENT_FAKE["cloud"]
