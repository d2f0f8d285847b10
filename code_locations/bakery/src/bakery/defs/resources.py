import dagster as dg

from bakery.storage import BakeryStorage, default_root


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"bakery_storage": BakeryStorage(root=default_root())})
