"""Where the bakery keeps files: its recipe inbox, its recipe catalog and its reports."""

import os
import tempfile
from pathlib import Path

import dagster as dg


def default_root() -> str:
    # On the platform the shared volume holds it, so the code server (which evaluates the
    # inbox sensor) and the workers (which run the steps) see the same files.
    shared_storage = os.environ.get("DAGSTER_STORAGE_DIR")
    base = Path(shared_storage).parent if shared_storage else Path(tempfile.gettempdir())
    return os.environ.get("BAKERY_STORAGE_DIR") or str(base / "bakery")


class BakeryStorage(dg.ConfigurableResource):
    root: str

    def folder(self, name: str) -> Path:
        path = Path(self.root) / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def inbox(self) -> Path:
        """Drop new recipe JSON files here; the new_recipe_sensor picks them up."""
        return self.folder("inbox")

    @property
    def catalog(self) -> Path:
        """Recipes accepted from the inbox; `ingredients` reads them with the samples."""
        return self.folder("catalog")

    @property
    def reports(self) -> Path:
        return self.folder("reports")
