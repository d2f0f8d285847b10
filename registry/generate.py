"""Render every file that lists teams from the registry, with the Jinja2 templates beside it.

- workspace.yaml: wholly generated.
- docker-compose.yml: only the blocks between the BEGIN TEAMS and END TEAMS lines (the team
  services and the code gateway) and the BEGIN TEAM NETWORKS and END TEAM NETWORKS lines, so
  the rest of the file, with its anchors and comments, stays hand-written and the team services
  keep using its anchors (an included file could not).

`write()` rewrites files in place (same inode), because the webserver and the daemon
bind-mount workspace.yaml and a replaced file would stay invisible to them.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import jinja2
import yaml

from registry import REPO_ROOT, RegistryError, teams

TEMPLATES = Path(__file__).resolve().parent / "templates"
COMPOSE_FILE = "docker-compose.yml"
WORKSPACE_FILE = "workspace.yaml"
# Each generated block of the compose file: its template, and the lines that begin and end it.
COMPOSE_BLOCKS = (
    ("compose-teams.yml.j2", "  # ---- BEGIN TEAMS:", "  # ---- END TEAMS ----"),
    (
        "compose-team-networks.yml.j2",
        "  # ---- BEGIN TEAM NETWORKS:",
        "  # ---- END TEAM NETWORKS ----",
    ),
)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _render(template: str, root: Path) -> str:
    return _environment().get_template(template).render(teams=teams(root))


def _splice_compose(current: str, block: str, begin: str, end: str) -> str:
    lines = current.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.startswith(begin)]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\n") == end]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise RegistryError(
            f"{COMPOSE_FILE} must hold exactly one generated block from a line starting "
            f"{begin.strip()!r} to the line {end.strip()!r}. "
            "Restore them (see git history) and run `make generate`."
        )
    return "".join(lines[: begins[0]]) + block + "".join(lines[ends[0] + 1 :])


def rendered(root: Path = REPO_ROOT) -> dict[Path, str]:
    """What each generated file should hold, from the registry as it is now."""
    compose_path = root / COMPOSE_FILE
    compose = compose_path.read_text()
    for template, begin, end in COMPOSE_BLOCKS:
        compose = _splice_compose(compose, _render(template, root), begin, end)
    workspace = _render("workspace.yaml.j2", root)
    for path, text in ((compose_path, compose), (root / WORKSPACE_FILE, workspace)):
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as error:  # never leave a file the platform cannot parse
            raise RegistryError(f"rendering {path.name} gave invalid YAML: {error}") from error
    return {compose_path: compose, root / WORKSPACE_FILE: workspace}


def stale(root: Path = REPO_ROOT) -> dict[Path, str]:
    """The generated files that differ from a fresh render, each with its unified diff."""
    differences = {}
    for path, text in rendered(root).items():
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path.name} (on disk)",
                tofile=f"{path.name} (from the registry)",
            )
            differences[path] = "".join(diff)
    return differences


def write(root: Path = REPO_ROOT) -> list[Path]:
    """Bring every generated file up to date; returns the files that changed."""
    changed = []
    for path, text in rendered(root).items():
        if not path.exists() or path.read_text() != text:
            with open(path, "r+" if path.exists() else "w") as handle:
                handle.write(text)
                handle.truncate()
            changed.append(path)
    return changed
