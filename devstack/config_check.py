"""Check dagster.yaml and workspace.yaml with Dagster's own schemas before anything starts.

A mistake in either file otherwise surfaces as a crashed daemon or webserver and a traceback in
its log. Here it is reported as the file, the entry and the fix, before a process starts or a
state folder is touched. `make dev` runs this first; in containers the `init` service runs it
(this file is copied into the platform image) before `dagster instance migrate`:

    python config_check.py [--check-environment] DAGSTER_HOME
"""

import argparse
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster._serdes.config_class import class_from_code_pointer

# Entries of dagster.yaml that name a class and pass it config.
CONFIGURABLE_ENTRIES = (
    "run_launcher",
    "run_coordinator",
    "compute_logs",
    "local_artifact_storage",
    "run_storage",
    "event_log_storage",
    "schedule_storage",
    "secrets",
)


class ConfigProblem(ValueError):
    """dagster.yaml or workspace.yaml is wrong; the message lists every problem found."""


def _load(path: Path) -> tuple[Any, list[str]]:
    if not path.exists():
        return None, [f"{path} is missing. Restore it from git (`git checkout -- {path.name}`)."]
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or error
        return None, [f"{path} is not valid YAML{line}: {problem}. Fix the syntax there."]
    if not isinstance(loaded, dict):
        return None, [f"{path} must be a YAML mapping (key: value entries) at its top level."]
    return loaded, []


def _evaluation_errors(error: DagsterInvalidConfigError) -> list[str]:
    # Dagster appends the whole expected schema to an unexpected entry: pages of text that
    # hide the one word that matters. The entry's name and path are before it.
    return [
        evaluation.message.split(' Expected: "')[0].rstrip(".") for evaluation in error.errors
    ] or [str(error)]


def _environment_references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield value["env"]
        else:
            for item in value.values():
                yield from _environment_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _environment_references(item)


def instance_problems(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Problems in a dagster.yaml; with `environ`, also the variables it reads that are unset."""
    loaded, problems = _load(path)
    if problems:
        return problems
    try:
        dagster_instance_config(str(path.parent), path.name)
    except DagsterInvalidConfigError as error:
        problems += [
            f"{path}: {message}. Fix the entry; valid top-level entries are "
            f"{', '.join(sorted(dagster_instance_config_schema()))} (see "
            "https://docs.dagster.io/deployment/oss/dagster-yaml)."
            for message in _evaluation_errors(error)
        ]
    for entry in CONFIGURABLE_ENTRIES:
        section = loaded.get(entry)
        if not isinstance(section, dict) or "module" not in section:
            continue
        problems += _class_problems(path, entry, section)
    if environ is not None:
        for name in sorted(set(_environment_references(loaded))):
            if not environ.get(name):
                problems.append(
                    f"{path} reads {name} from the environment, but it is not set. In "
                    "containers it comes from .env through docker-compose.yml (run `make env`)."
                )
    return problems


def _class_problems(path: Path, entry: str, section: dict[str, Any]) -> list[str]:
    module, class_name = section["module"], section.get("class")
    try:
        configurable = class_from_code_pointer(module, class_name)
    except Exception as error:
        return [
            f"{path}: {entry} names class {class_name!r} in module {module!r}, which cannot be "
            f"loaded ({type(error).__name__}: {error}). Fix the names, or add the package that "
            "provides it to the platform's pyproject.toml."
        ]
    config_type = getattr(configurable, "config_type", None)
    if config_type is None:
        return []
    result = validate_config(config_type(), section.get("config") or {})
    return [
        f"{path}: {entry} ({class_name}): {error.message} Fix `{entry}.config`."
        for error in result.errors or []
    ]


def workspace_problems(path: Path) -> list[str]:
    loaded, problems = _load(path)
    if problems:
        return problems
    try:
        ensure_workspace_config(loaded, str(path))
    except DagsterInvalidConfigError as error:
        return [f"{path}: {message}. Fix the entry." for message in _evaluation_errors(error)]
    names: list[str] = []
    for entry in loaded.get("load_from") or []:
        server = (entry or {}).get("grpc_server") if isinstance(entry, dict) else None
        if not server or not server.get("location_name"):
            problems.append(
                f"{path}: every load_from entry must be a grpc_server with a location_name (the "
                f"team's name); found {entry!r}. Each team runs its own code server."
            )
            continue
        names.append(server["location_name"])
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(
            f"{path}: location name(s) {', '.join(duplicates)} appear more than once. Each team "
            "has one entry; remove the duplicate."
        )
    return problems


def check(home: Path, environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigProblem listing every problem in `home`'s dagster.yaml and workspace.yaml."""
    problems = instance_problems(home / "dagster.yaml", environ) + workspace_problems(
        home / "workspace.yaml"
    )
    if problems:
        raise ConfigProblem("\n".join(f"- {problem}" for problem in problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path, help="the folder holding dagster.yaml, workspace.yaml")
    parser.add_argument(
        "--check-environment",
        action="store_true",
        help="also report variables dagster.yaml reads from the environment that are unset",
    )
    args = parser.parse_args(argv)
    try:
        check(args.home, os.environ if args.check_environment else None)
    except ConfigProblem as problems:
        print(f"The platform's configuration has problems; nothing was started:\n{problems}")
        return 1
    print(f"{args.home}/dagster.yaml and workspace.yaml are valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
