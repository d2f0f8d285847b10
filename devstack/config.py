"""Where local process mode differs from docker compose. Every difference is in this file.

1. The run launcher. By default the same as compose's: WarmRunLauncher, each run goes to its
   team's warm run worker (dagster_team_celery/runs/warm_launcher.py). The isolation choice
   (`run_launcher="process"`) is LocalRunLauncher (devstack/process_launcher.py: DefaultRunLauncher,
   where a run is a fresh subprocess of its team's code server, plus the worker health check
   run monitoring needs), as compose's is a container per run.
2. Host names and ports: services listen on 127.0.0.1, on free ports, instead of compose's
   service names on fixed ports.
3. Folders: the artifact cache, step outputs and compute logs live under the stack's state
   folder instead of named volumes.

`dagster.yaml` and `workspace.yaml` are read from the repository and rewritten only in these
respects, so the instance config the tests exercise is the one compose ships.
"""

from pathlib import Path
from typing import Any

import yaml

import registry

REPO_ROOT = Path(__file__).resolve().parent.parent

# "warm" keeps dagster.yaml's launcher, which compose uses too (its default isolation, warm);
# "process" swaps in a fresh subprocess of the team's code server per run.
RUN_LAUNCHERS: dict[str, dict[str, Any] | None] = {
    "warm": None,
    "process": {"module": "devstack.process_launcher", "class": "LocalRunLauncher"},
}
# The platform processes import the launcher above from this checkout.
DEVSTACK_PYTHONPATH = str(Path(__file__).resolve().parent.parent)
LOCAL_HOST = "127.0.0.1"
# The platform's own code location (cache eviction), served in both modes; see
# docker-compose.yml's platform-code.
PLATFORM_LOCATION = "platform"
PLATFORM_CODE_SERVICE = "platform-code"
PLATFORM_MODULE = "dagster_wandb_io.maintenance"


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SystemExit(f"{path} is not valid YAML: {error}. Fix the file and retry.") from error
    if not isinstance(loaded, dict):
        raise SystemExit(f"{path} must hold a YAML mapping at its top level.")
    return loaded


def teams(root: Path = REPO_ROOT) -> list[str]:
    """The teams local mode runs: every registered team whose code is in this checkout (a team
    deployed from its own repository's image has nothing here to run)."""
    try:
        return [team.name for team in registry.teams(root) if team.built_here]
    except registry.RegistryError as error:
        raise SystemExit(f"error: {error}") from error


def local_instance_yaml(root: Path = REPO_ROOT, run_launcher: str = "warm") -> str:
    instance = load_yaml(root / "dagster.yaml")
    if RUN_LAUNCHERS[run_launcher] is not None:
        instance["run_launcher"] = RUN_LAUNCHERS[run_launcher]
    return yaml.safe_dump(instance, sort_keys=False)


def local_workspace_yaml(code_server_ports: dict[str, int], root: Path = REPO_ROOT) -> str:
    """workspace.yaml pointed at local code servers; teams without one are left out."""
    workspace = load_yaml(root / "workspace.yaml")
    entries = []
    for entry in workspace["load_from"]:
        server = entry["grpc_server"]
        if server["location_name"] in code_server_ports:
            server["host"] = LOCAL_HOST
            server["port"] = code_server_ports[server["location_name"]]
            entries.append(entry)
    workspace["load_from"] = entries
    return yaml.safe_dump(workspace, sort_keys=False)


def team_dir(team: str, root: Path = REPO_ROOT) -> Path:
    return root / "code_locations" / team


def team_bin(team: str, executable: str, root: Path = REPO_ROOT) -> Path:
    """Each team runs in its own virtualenv (`make venvs`), since their pins differ."""
    return team_dir(team, root) / ".venv" / "bin" / executable
