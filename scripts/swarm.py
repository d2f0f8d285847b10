"""The platform on a Docker Swarm: `make swarm-up`, `make swarm-down`, `make swarm-ps`, each
`python -m scripts.swarm <command>` from the checkout's root:

    up [--timeout S]   generate the stack (registry/swarm_stack.py), deploy it, wait until every
                       service is healthy
    down               remove the stack (each node's volumes are kept)
    ps                 each service's replicas, and the last error of any not running
    config             print the stack that `up` would deploy (no secret values)

The docker CLI talks to a manager of the swarm (DOCKER_HOST, or the local engine). Images are
not built here: every node needs the platform's and the teams' images (`make build`, then push
them to your registry, or `docker save | docker load` on each node; PLATFORM_IMAGE_PREFIX and
PLATFORM_IMAGE_TAG in .env name them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from registry import RegistryError, team_names
from registry.swarm_stack import CORE_LABEL, Stack, generate
from scripts.envfile import REPO_ROOT


class SwarmError(RuntimeError):
    """What is wrong with the swarm or the settings, and the fix."""


def docker(*arguments: str, check: bool = True, input: str | None = None) -> str:
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True, input=input)
    if check and result.returncode != 0:
        raise SwarmError(f"docker {' '.join(arguments[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def settings(env_file: Path) -> dict[str, str]:
    """.env's settings, overridden by the environment's, as compose reads them."""
    if not env_file.exists():
        raise SwarmError(f"{env_file} is missing: run `make env` first (it creates every secret).")
    values = {}
    for line in env_file.read_text().splitlines():
        key, separator, value = line.partition("=")
        if separator and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return {**values, **os.environ}


def stack_name(values: dict[str, str]) -> str:
    return values.get("PLATFORM_NAME") or "mlplatform"


def check_manager() -> None:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    if state.split() != ["active", "true"]:
        raise SwarmError(
            "this docker engine is not a Swarm manager (state: "
            f"{state.strip() or 'unknown'}): run `docker swarm init` here, or point DOCKER_HOST "
            "at a manager (README, Several hosts)."
        )


def node_labels() -> dict[str, dict[str, str]]:
    ids = docker("node", "ls", "-q").split()
    nodes = json.loads(docker("node", "inspect", *ids))
    return {node["Description"]["Hostname"]: node["Spec"].get("Labels") or {} for node in nodes}


def required_labels() -> list[str]:
    return [CORE_LABEL] + [
        f"mlplatform.{team}.{role}" for team in team_names(REPO_ROOT) for role in ("runs", "steps")
    ]


def check_labels() -> None:
    """Every service needs a node to go to. A swarm of one node with no platform labels gets
    them all, so `make swarm-up` works on a fresh `docker swarm init`."""
    labels = node_labels()
    required = required_labels()
    if len(labels) == 1 and not any(
        key.startswith("mlplatform.") for key in labels[next(iter(labels))]
    ):
        node_id = docker("node", "ls", "-q").split()[0]
        for label in required:
            docker("node", "update", "--label-add", f"{label}=true", node_id)
        print(f"one node, no platform labels: gave {next(iter(labels))} all of them")
        return
    missing = [
        label
        for label in required
        if not any(node.get(label) == "true" for node in labels.values())
    ]
    if missing:
        raise SwarmError(
            "no node carries " + ", ".join(f"{label}=true" for label in missing) + ": label one "
            f"per missing label, e.g. `docker node update --label-add {missing[0]}=true <node>` "
            "(README, Several hosts)."
        )


def write_stack(values: dict[str, str], state_dir: Path) -> tuple[Path, Stack]:
    stack = generate(values, stack_name(values))
    state_dir.mkdir(mode=0o700, exist_ok=True)
    secrets_dir = state_dir / "secrets"
    shutil.rmtree(secrets_dir, ignore_errors=True)
    secrets_dir.mkdir(mode=0o700)
    for name, value in stack.secrets.items():
        path = secrets_dir / name
        path.touch(mode=0o600)
        path.write_text(value)
    stack_file = state_dir / "docker-stack.yml"
    stack_file.write_text(stack.text())
    return stack_file, stack


def services(name: str) -> list[dict[str, str]]:
    listing = docker("stack", "services", name, "--format", "{{json .}}", check=False)
    return [json.loads(line) for line in listing.splitlines() if line.strip()]


def ready(service: dict[str, str]) -> bool:
    replicas = service["Replicas"]
    if "job" in service["Mode"]:
        # "0/1 (1/1 completed)"
        completed = replicas.partition("(")[2].split()[0]
        done, _, wanted = completed.partition("/")
        return done == wanted
    running, _, wanted = replicas.partition("/")
    return running == wanted.split()[0]


def last_errors(name: str) -> list[str]:
    """The newest task error of each service that has one (an image missing on a node, a
    placement no node satisfies, a failing health check)."""
    lines = []
    for service in services(name):
        if ready(service):
            continue
        tasks = docker(
            "service", "ps", service["Name"], "--no-trunc", "--format", "{{json .}}", check=False
        )
        for line in tasks.splitlines()[:1]:
            task = json.loads(line)
            detail = task.get("Error") or task.get("CurrentState")
            lines.append(f"{service['Name']} on {task.get('Node') or '(no node)'}: {detail}")
    return lines


def show(name: str) -> list[dict[str, str]]:
    listed = services(name)
    for service in sorted(listed, key=lambda s: s["Name"]):
        print(f"  {'ok ' if ready(service) else '.. '} {service['Name']:<32} {service['Replicas']}")
    return listed


def updating(listed: list[dict[str, str]]) -> list[str]:
    """Services whose rolling update (a new image, config or secret) has not finished."""
    if not listed:
        return []
    inspected = json.loads(
        docker("service", "inspect", *(s["Name"] for s in listed), check=False) or "[]"
    )
    return [
        service["Spec"]["Name"]
        for service in inspected
        if (service.get("UpdateStatus") or {}).get("State") in ("updating", "rollback_started")
    ]


def wait_ready(name: str, timeout: float) -> float:
    started = time.monotonic()
    while True:
        listed = services(name)
        if listed and all(ready(service) for service in listed) and not updating(listed):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            show(name)
            raise SwarmError(
                f"not every service is ready after {timeout:.0f}s:\n  "
                + "\n  ".join(last_errors(name) or ["(no task error reported)"])
            )
        time.sleep(3)


def up(values: dict[str, str], state_dir: Path, timeout: float) -> int:
    check_manager()
    check_labels()
    name = stack_name(values)
    stack_file, stack = write_stack(values, state_dir)
    try:
        print(f"deploying stack {name} from {stack_file}")
        # Images come from each node (no registry lookup): `docker load`ed or pulled beforehand.
        print(
            docker(
                "stack",
                "deploy",
                "--prune",
                "--resolve-image",
                "never",
                "--compose-file",
                str(stack_file),
                name,
            ).strip()
        )
    finally:
        # Swarm holds the secrets now; no copy stays on this disk beyond .env.
        shutil.rmtree(state_dir / "secrets", ignore_errors=True)
    seconds = wait_ready(name, timeout)
    for removed in remove_replaced(name, stack):
        print(f"removed {removed}, replaced by a new version")
    show(name)
    print(f"every service of {name} is ready ({seconds:.0f}s)")
    return 0


def remove_replaced(name: str, stack: Stack) -> list[str]:
    """The stack's configs and secrets that a deploy replaced (a rotated password, a new
    workspace): Swarm keeps them until removed, and refuses while a task still uses one."""
    current = {
        entry["name"] for kind in ("configs", "secrets") for entry in stack.document[kind].values()
    }
    removed = []
    for kind in ("config", "secret"):
        listed = docker(
            kind, "ls", "--filter", f"label=com.docker.stack.namespace={name}",
            "--format", "{{.Name}}", check=False,
        ).split()  # fmt: skip
        for item in sorted(set(listed) - current):
            if subprocess.run(["docker", kind, "rm", item], capture_output=True).returncode == 0:
                removed.append(f"{kind} {item}")
    return removed


def down(name: str) -> int:
    print(docker("stack", "rm", name, check=False).strip())
    # `stack rm` returns at once; the next deploy needs the networks gone.
    deadline = time.monotonic() + 120
    while docker("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={name}"):
        if time.monotonic() > deadline:
            raise SwarmError(f"the stack {name}'s networks are still there after 120s")
        time.sleep(2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.swarm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env-file", type=Path, default=REPO_ROOT / ".env")
    parser.add_argument(
        "--state-dir", type=Path, default=REPO_ROOT / ".swarm", help="where the stack file goes"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up").add_argument("--timeout", type=float, default=600.0)
    commands.add_parser("down")
    commands.add_parser("ps")
    commands.add_parser("config")
    arguments = parser.parse_args(argv)
    try:
        values = settings(arguments.env_file)
        name = stack_name(values)
        if arguments.command == "up":
            return up(values, arguments.state_dir, arguments.timeout)
        if arguments.command == "down":
            return down(name)
        if arguments.command == "ps":
            listed = show(name)
            for line in last_errors(name):
                print(f"  {line}")
            return 0 if listed and all(ready(s) for s in listed) else 1
        print(generate(values, name).text(), end="")
        return 0
    except (SwarmError, RegistryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
