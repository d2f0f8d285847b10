"""Adding and removing teams: copy the team template, or delete the folder, then regenerate.

Nothing here edits a deployment file by hand; `generate.write` renders them from the folders.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from registry import (
    MANIFEST,
    REPO_ROOT,
    TEAMS_FOLDER,
    RegistryError,
    check_name,
    find_team,
    generate,
)

TEMPLATE = Path("templates") / "team"
PLACEHOLDER = "__TEAM__"


def check_new_name(name: str, root: Path) -> None:
    check_name(name)
    if importlib.util.find_spec(name) is not None:
        raise RegistryError(
            f"{name!r} would shadow the installed module {name!r}; choose another team name."
        )
    if (root / TEAMS_FOLDER / name).exists():
        raise RegistryError(f"team {name!r} already exists; choose another name.")


def copy_template(name: str, root: Path) -> Path:
    target = root / TEAMS_FOLDER / name
    template = root / TEMPLATE
    for source in sorted(template.rglob("*")):
        if "__pycache__" in source.parts:
            continue
        relative = Path(str(source.relative_to(template)).replace(PLACEHOLDER, name))
        destination = target / relative
        if source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(source.read_text().replace(PLACEHOLDER, name))
    return target


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RegistryError(f"`{' '.join(command)}` failed:\n{result.stderr or result.stdout}")


def new_team(name: str, root: Path = REPO_ROOT, sync: bool = True) -> Path:
    """Scaffold code_locations/<name>/, lock it and regenerate; on any failure undo it all."""
    check_new_name(name, root)
    target = root / TEAMS_FOLDER / name
    try:
        copy_template(name, root)
        ruff = [sys.executable, "-m", "ruff"]
        _run([*ruff, "check", "--fix", "--quiet", str(target)], root)
        _run([*ruff, "format", "--quiet", str(target)], root)
        _run(["uv", "lock", "--quiet"], target)
        if sync:
            _run(["uv", "sync", "--frozen", "--quiet"], target)
        generate.write(root)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        generate.write(root)
        raise
    return target


def remove_team(name: str, root: Path = REPO_ROOT) -> Path:
    """Delete the team's folder (code, lock, venv) and regenerate the deployment files."""
    team = find_team(name, root)
    shutil.rmtree(team.folder)
    generate.write(root)
    return team.folder


def set_image(name: str, image: str, root: Path = REPO_ROOT) -> None:
    """Point a team kept in its own repository at another image, in its manifest."""
    team = find_team(name, root)
    if team.built_here:
        raise RegistryError(
            f"team {name!r} is built from {team.folder}; IMAGE= is for teams kept in their own "
            f"repository (a {MANIFEST} naming an image). Use `make redeploy TEAM={name}`."
        )
    if not image.strip() or any(char.isspace() for char in image):
        raise RegistryError(f"{image!r} is not an image reference (e.g. registry/team:1.2).")
    lines = [f'image = "{image}"\n']
    if team.module != f"{name}.definitions":
        lines.append(f'module = "{team.module}"\n')
    manifest = team.folder / MANIFEST
    comments = [
        line for line in manifest.read_text().splitlines(keepends=True) if line.startswith("#")
    ]
    manifest.write_text("".join(comments + lines))
    generate.write(root)
