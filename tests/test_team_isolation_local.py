"""On the running local stack, a process holding one team's credentials cannot act as another
team with W&B artifacts: it has no other team's key, and its own key is refused under the other
team's entity before anything is written."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from dagster_wandb_io.keys import PRIVATE_KEY_ENV

pytestmark = pytest.mark.local_stack

# Run with the ml team's environment: publish under the bakery's entity, as a hostile or buggy
# ml asset could.
PUBLISH_AS_THE_BAKERY = """
import os, sys
from pathlib import Path
from dagster_wandb_io.config import WriteConfig
from dagster_wandb_io.errors import ConfigurationError
from dagster_wandb_io.runs import build_run_spec
from dagster_wandb_io.store import ArtifactStore, StoreSettings

settings = StoreSettings(base_dir=Path(os.environ["DAGSTER_WANDB_IO_BASE_DIR"]), mode="offline",
                         entity="bakery", project="cakes", host="https://api.wandb.ai")
run = build_run_spec(entity="bakery", project="cakes", host="https://api.wandb.ai", api_key=None,
                     dagster_run_id="00000000-0000-0000-0000-00000000a77a")
try:
    store = ArtifactStore(settings)
    store.write({"forged": True}, name="baked_cakes", config=WriteConfig(), run=run)
except ConfigurationError as refused:
    print(refused)
    sys.exit(3)
"""


def team_processes(local_stack, team: str) -> list[psutil.Process]:
    found = []
    for name, service in local_stack.services.items():
        if name.startswith(f"{team}-") and service.pid:
            leader = psutil.Process(service.pid)
            found += [leader, *leader.children(recursive=True)]
    return found


def test_a_teams_processes_hold_only_their_own_signing_key(local_stack):
    keys = local_stack.secrets["team_signing_keys"]
    assert len(set(keys.values())) == len(keys), "every team has its own key"
    for team in local_stack.teams:
        others = {key for other, key in keys.items() if other != team}
        processes = team_processes(local_stack, team)
        assert processes, f"no running process of {team}"
        for process in processes:
            try:
                environment = process.environ()
            except psutil.NoSuchProcess:
                continue
            assert environment.get(PRIVATE_KEY_ENV) == keys[team], (team, process.name())
            assert not others & set(environment.values()), f"{team} holds another team's key"


def test_the_ml_team_cannot_publish_under_the_bakerys_entity(local_stack):
    cache = Path(local_stack.team_env("ml")["DAGSTER_WANDB_IO_BASE_DIR"])
    bakery_entries = cache / "dagster_wandb_io" / "cache" / "bakery"
    index = cache / "dagster_wandb_io" / "index" / "bakery"

    def snapshot() -> set[str]:
        return {
            str(p) for root in (bakery_entries, index) if root.exists() for p in root.rglob("*")
        }

    before = snapshot()
    attempt = subprocess.run(
        [sys.executable, "-c", PUBLISH_AS_THE_BAKERY],
        env={**os.environ, **local_stack.team_env("ml")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert attempt.returncode == 3, attempt.stdout + attempt.stderr
    assert "Team 'ml' cannot publish artifacts under the W&B entity 'bakery'" in attempt.stdout
    assert snapshot() == before, "the refused write left files in the bakery's cache or index"
