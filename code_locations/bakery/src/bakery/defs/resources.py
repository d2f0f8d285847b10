import dagster as dg

from bakery.storage import BakeryStorage, default_root


@dg.definitions
def resources() -> dg.Definitions:
    """The bakery's own resources; the W&B IO manager comes from defs/wandb/defs.yaml."""
    return dg.Definitions(resources={"bakery_storage": BakeryStorage(root=default_root())})
