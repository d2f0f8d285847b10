"""Which local files a step may put into an artifact (`add_files`, `add_dirs`, file:// refs).

Whatever is added is copied into the cache every team reads, so a path from config (which run
config can set) must not reach the host's or the container's other files: `/etc/passwd`, a
mounted key, another team's folder. A step may read under its working directory, the
temporary directory, and the folders listed in ``DAGSTER_WANDB_IO_READABLE_ROOTS``
(``os.pathsep``-separated). A directory is added only if nothing in it is a symlink that leads
out of it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigurationError

READABLE_ROOTS_ENV = "DAGSTER_WANDB_IO_READABLE_ROOTS"


def readable_roots() -> list[Path]:
    extra = [p for p in os.environ.get(READABLE_ROOTS_ENV, "").split(os.pathsep) if p]
    return [Path(p).resolve() for p in (os.getcwd(), tempfile.gettempdir(), *extra)]


def check_readable(local_path: str | os.PathLike[str], *, what: str) -> None:
    """Refuse a path that resolves (symlinks followed) outside every readable root."""
    resolved = Path(local_path).resolve()
    roots = readable_roots()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ConfigurationError(
            f"{what} {str(local_path)!r} resolves to {resolved}, outside the folders a step may"
            f" add to an artifact ({', '.join(map(str, roots))}). Write the file under the"
            f" step's working or temporary directory, or list its folder in {READABLE_ROOTS_ENV}."
        )


def check_directory(local_path: str | os.PathLike[str]) -> None:
    """Refuse a directory outside the roots, or holding a symlink that leads out of it."""
    check_readable(local_path, what="The `add_dirs` directory")
    top = Path(local_path).resolve()
    for folder, subfolders, files in os.walk(top):
        for name in [*subfolders, *files]:
            entry = Path(folder, name)
            if entry.is_symlink() and not entry.resolve().is_relative_to(top):
                raise ConfigurationError(
                    f"{entry} in the `add_dirs` directory {str(local_path)!r} is a symlink to"
                    f" {entry.resolve()}, outside that directory; it is not added. Copy the file"
                    " into the directory instead."
                )
