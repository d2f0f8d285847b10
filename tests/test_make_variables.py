"""A value given to make (NAME=, TEAM=, IMAGE=, ARGS=) is data, never shell text: a team name
with backquotes or $(...) is refused by the registry before anything runs it."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import copy_checkout

HOSTILE = {
    "backquotes": "`touch {marker}`",
    "dollar-paren": "$(touch {marker})",
    "quote-breakout": '"; touch {marker}; echo "',
}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def make(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    # -o: the venv targets count as made, so only the recipe under test runs, with this
    # interpreter (the checkout copy has no .venv).
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            "venvs",
            "-o",
            "platform-venv",
            *args,
            f"PYTHON={sys.executable}",
        ],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("shape", HOSTILE, ids=list(HOSTILE))
@pytest.mark.parametrize(
    "target",
    [
        "new-team NAME={value}",
        "remove-team NAME={value}",
        "redeploy TEAM={value} MODE=local",
        "redeploy TEAM=bakery IMAGE={value}",
    ],
    ids=["new-team", "remove-team", "redeploy-local", "redeploy-image"],
)
def test_a_hostile_value_runs_nothing(checkout, tmp_path, target, shape):
    marker = tmp_path / "pwned"
    value = HOSTILE[shape].format(marker=marker)
    name, _, assignment = target.partition(" ")
    args = [name, *(part.format(value=value) for part in assignment.split(" "))]
    result = make(checkout, *args)
    assert not marker.exists(), f"make {target} ran the shell text in {value!r}"
    assert result.returncode != 0, result.stdout + result.stderr
