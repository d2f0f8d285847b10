"""`make new-team NAME=x`: scaffold a team and register it everywhere the platform looks.

Creates code_locations/<name>/ from templates/team/ and locks its dependencies, then adds
its code server and worker to docker-compose.yml and its code location to workspace.yaml.
(dagster.yaml's run limit applies to every team by itself.) If any step fails, every file is
put back.
"""

import argparse
import importlib.util
import keyword
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "__TEAM__"
# Lowercase letters and digits only: the name becomes a Python package, a Celery queue, a
# compose service and a host name, and underscores are not valid in host names.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,29}$")
RESERVED = {"dagster", "celery", "platform", "devstack", "scripts", "tests", "bench", "packages"}

REGISTRY_TEMPLATES = "templates/registry"


class ScaffoldError(Exception):
    pass


def validate_name(name: str, root: Path) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise ScaffoldError(
            f"{name!r} is not a valid team name: use 2-30 lowercase letters and digits, starting "
            "with a letter (it becomes a Python package, a Celery queue and a host name), "
            "e.g. make new-team NAME=forecasting"
        )
    if keyword.iskeyword(name) or name in RESERVED:
        raise ScaffoldError(f"{name!r} is reserved; choose another team name.")
    if importlib.util.find_spec(name) is not None:
        raise ScaffoldError(
            f"{name!r} would shadow the installed module {name!r}; choose another team name."
        )
    registered = yaml.safe_load((root / "workspace.yaml").read_text())["load_from"]
    if (root / "code_locations" / name).exists() or any(
        entry["grpc_server"]["location_name"] == name for entry in registered
    ):
        raise ScaffoldError(f"team {name!r} already exists; choose another name.")


def copy_template(name: str, root: Path) -> Path:
    target = root / "code_locations" / name
    template = root / "templates" / "team"
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


def insert_after_block(text: str, header_pattern: str, addition: str) -> str:
    """Insert `addition` after the last line indented under the line matching the pattern."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.search(header_pattern, line))
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return "".join(lines[:end]) + addition + "".join(lines[end:])


def registry_snippet(root: Path, file_name: str, **values: str) -> str:
    """A snippet from templates/registry/, without its leading comment, placeholders filled."""
    text = (root / REGISTRY_TEMPLATES / file_name).read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    for key, value in values.items():
        body = body.replace(f"__{key.upper()}__", value)
    return body


def register_in_compose(name: str, compose: str, root: Path) -> str:
    compose = insert_after_block(
        compose,
        r"depends_on: &after-code-servers",
        f"      {name}-code:\n        condition: service_healthy\n",
    )
    marker = re.search(r"^networks:", compose, re.M)
    if marker is None:
        raise ScaffoldError("docker-compose.yml has no top-level `networks:` to insert before")
    block = registry_snippet(root, "compose-services.yml", team=name)
    return compose[: marker.start()] + block + compose[marker.start() :]


def register_in_workspace(name: str, workspace: str, root: Path) -> str:
    entry = registry_snippet(root, "workspace-entry.yml", team=name)
    return workspace.rstrip("\n") + "\n" + entry


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ScaffoldError(f"`{' '.join(command)}` failed:\n{result.stderr or result.stdout}")


def scaffold(name: str, root: Path = REPO_ROOT, sync: bool = True) -> Path:
    validate_name(name, root)
    registry = {
        path: path.read_text() for path in (root / "docker-compose.yml", root / "workspace.yaml")
    }
    target = root / "code_locations" / name
    try:
        copy_template(name, root)
        compose, workspace = registry.values()
        updated = {
            root / "docker-compose.yml": register_in_compose(name, compose, root),
            root / "workspace.yaml": register_in_workspace(name, workspace, root),
        }
        for path, text in updated.items():
            yaml.safe_load(text)  # never leave a file the platform cannot parse
            path.write_text(text)
        ruff = [sys.executable, "-m", "ruff"]
        run([*ruff, "check", "--fix", "--quiet", str(target)], root)
        run([*ruff, "format", "--quiet", str(target)], root)
        run(["uv", "lock", "--quiet"], target)
        if sync:
            run(["uv", "sync", "--frozen", "--quiet"], target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        for path, text in registry.items():
            path.write_text(text)
        raise
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout to change")
    parser.add_argument("--no-sync", action="store_true", help="lock, but create no venv")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        target = scaffold(args.name, args.root, sync=not args.no_sync)
    except ScaffoldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Created team {args.name!r} in {target.relative_to(args.root)} "
        f"({time.monotonic() - started:.1f}s) and registered it in workspace.yaml, "
        f"docker-compose.yml ({args.name}-code, {args.name}-worker).\n"
        f"Next: `make dev` or `make up`, then launch `sample_job` in the {args.name} location."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
