"""The team registry: code_locations/ is the one list of teams, and every file that lists
teams is rendered from it, never edited as text."""

import subprocess
import sys

import pytest
import yaml

import registry
from registry import generate, scaffold
from tests.repo import copy_checkout

EXTERNAL_MANIFEST = 'image = "registry.example.com/forecast:1.0"\nmodule = "forecast.defs"\n'


@pytest.fixture
def checkout(tmp_path):
    return copy_checkout(tmp_path / "checkout")


def add_external_team(checkout, name="forecast", manifest=EXTERNAL_MANIFEST):
    folder = checkout / "code_locations" / name
    folder.mkdir()
    (folder / "team.toml").write_text(manifest)
    return folder


def git(checkout, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout


def test_the_team_folders_are_the_list_of_teams(checkout):
    assert registry.team_names(checkout) == ["bakery", "ml"]
    # What the Makefile reads, with nothing but the standard library.
    listed = subprocess.run(
        ["python3", "-m", "registry", "--root", str(checkout), "list"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == ["bakery", "ml"]


def test_new_team_then_remove_team_leaves_git_status_clean(checkout):
    git(checkout, "init", "-q")
    git(checkout, "add", "-A")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")

    scaffold.new_team("carrots", checkout, sync=False)
    touched = sorted(line[3:] for line in git(checkout, "status", "--porcelain").splitlines())
    print(f"\nfiles a new team touches: {touched}")
    assert touched == ["code_locations/carrots/", "docker-compose.yml", "workspace.yaml"]
    services = yaml.safe_load((checkout / "docker-compose.yml").read_text())["services"]
    assert {"carrots-code", "carrots-worker"} <= set(services)
    assert not generate.stale(checkout)

    scaffold.remove_team("carrots", checkout)
    assert git(checkout, "status", "--porcelain") == ""


def test_a_team_from_its_own_repository_deploys_its_image_and_builds_nothing(checkout):
    add_external_team(checkout)
    generate.write(checkout)
    services = yaml.safe_load((checkout / "docker-compose.yml").read_text())["services"]
    code, worker = services["forecast-code"], services["forecast-worker"]
    assert code["image"] == worker["image"] == "registry.example.com/forecast:1.0"
    assert "build" not in code and "build" not in worker
    assert code["command"][code["command"].index("--module-name") + 1] == "forecast.defs"
    assert worker["environment"]["DAGSTER_TEAM"] == "forecast"
    workspace = yaml.safe_load((checkout / "workspace.yaml").read_text())["load_from"]
    assert {
        "grpc_server": {"location_name": "forecast", "host": "forecast-code", "port": 4000}
    } in (workspace)
    # The Makefile builds and locks only the teams whose code is here.
    assert [team.name for team in registry.teams(checkout) if team.built_here] == ["bakery", "ml"]


def test_set_image_moves_an_external_team_to_a_new_tag(checkout):
    add_external_team(checkout)
    scaffold.set_image("forecast", "registry.example.com/forecast:1.1", checkout)
    services = yaml.safe_load((checkout / "docker-compose.yml").read_text())["services"]
    assert services["forecast-code"]["image"] == "registry.example.com/forecast:1.1"
    assert registry.find_team("forecast", checkout).module == "forecast.defs"
    with pytest.raises(registry.RegistryError, match="built from"):
        scaffold.set_image("bakery", "elsewhere/bakery:2", checkout)
    with pytest.raises(registry.RegistryError, match="not an image reference"):
        scaffold.set_image("forecast", "a b", checkout)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('image = "x:1"\nqueue = "other"\n', "unknown key"),
        ('image = "x:1"\nmodule = "os; import evil"\n', "not a Python module path"),
        ('image = "x:1\\nmalicious: true"\n', "one-line"),
        ("image = ", "not valid TOML"),
        ("", "neither a pyproject.toml"),
    ],
)
def test_a_bad_manifest_is_refused_with_the_fix(checkout, manifest, message):
    add_external_team(checkout, manifest=manifest)
    with pytest.raises(registry.RegistryError, match=message):
        registry.teams(checkout)


def test_a_manifest_may_not_name_an_image_beside_the_teams_code(checkout):
    (checkout / "code_locations" / "bakery" / "team.toml").write_text('image = "x:1"\n')
    with pytest.raises(registry.RegistryError, match="Keep either the code"):
        registry.teams(checkout)


def test_a_hostile_folder_name_is_refused(checkout):
    add_external_team(checkout, name="Evil-Name")
    with pytest.raises(registry.RegistryError, match="not a valid team name"):
        registry.teams(checkout)


def test_a_stale_generated_file_fails_the_check_with_a_diff(checkout):
    add_external_team(checkout)
    result = subprocess.run(
        [sys.executable, "-m", "registry", "--root", str(checkout), "generate", "--check"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "+  forecast-code:" in result.stdout and "run `make generate`" in result.stderr


def test_generating_without_the_markers_says_how_to_fix_it(checkout):
    compose = checkout / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("  # ---- END TEAMS ----\n", ""))
    with pytest.raises(registry.RegistryError, match="exactly one generated block"):
        generate.write(checkout)


def test_generate_rewrites_workspace_yaml_in_place(checkout):
    """The webserver and the daemon bind-mount it: a new inode would stay invisible to them."""
    workspace = checkout / "workspace.yaml"
    inode = workspace.stat().st_ino
    add_external_team(checkout)
    assert workspace in generate.write(checkout)
    assert workspace.stat().st_ino == inode
