"""Idle memory of each service: the proportional set size (PSS) of its whole process tree.

PSS splits pages shared between processes (a prefork pool's copy-on-write pages, the
interpreter's libraries) among them, so the figures add up across services."""

import contextlib
import subprocess

import psutil

from devstack.local_stack import LocalStack
from registry import service_names

MIB = 1024 * 1024


def tree_pss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_full_info().pss
    return total


def local_footprint(stack: LocalStack) -> dict[str, float]:
    """MiB per service, and per team (code server + its workers, steps and warm runs)."""
    services = {
        name: round(tree_pss(service.pid) / MIB, 1)
        for name, service in stack.services.items()
        if service.pid
    }
    teams = {
        team: round(sum(services.get(name, 0.0) for name in service_names(team)), 1)
        for team in stack.teams
    }
    return {"services": services, "teams": teams}


def container_footprint(compose: list[str]) -> dict[str, float]:
    """MiB per compose service, from the host's view of each container's processes."""
    ids = subprocess.run([*compose, "ps", "-q"], capture_output=True, text=True).stdout.split()
    result = {}
    for container in ids:
        inspected = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                '{{.State.Pid}} {{index .Config.Labels "com.docker.compose.service"}}',
                container,
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        if len(inspected) == 2 and inspected[0] != "0":
            result[inspected[1]] = round(tree_pss(int(inspected[0])) / MIB, 1)
    return result
