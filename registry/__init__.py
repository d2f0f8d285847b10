"""The team registry: the folders under code_locations/ are the one list of teams.

A team folder is either the team's code (a dg project with its own pyproject.toml and lock,
built into the team's image here) or, for a team kept in its own repository, just a manifest
(`team.toml`) naming the prebuilt image and the module to load. A folder may also carry a
`team.toml` beside its code to override the defaults below.

Everything that lists teams reads them through `teams()`: the generator of workspace.yaml and
the compose team services (`python -m registry generate`), the Makefile, local mode, the
redeploy command and the tests. This module uses the standard library only, so the Makefile
can call it with any Python 3.11 before the virtualenvs exist.
"""

from __future__ import annotations

import keyword
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEAMS_FOLDER = "code_locations"
MANIFEST = "team.toml"
MANIFEST_KEYS = {"image", "module", "entity"}
# Lowercase letters and digits only: the name becomes a Python package, a Celery queue, a
# compose service and a host name, and underscores are not valid in host names.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{1,29}")
# Names the platform's own services, folders or modules already use.
RESERVED = {"dagster", "celery", "platform", "devstack", "scripts", "tests", "bench", "packages"}
RESERVED |= {"registry", "postgres", "redis", "init", "webserver", "daemon", "flower"}
# And the first word of a platform service's name (code-gateway, object-store): the Swarm
# stack would take that service for the team's `<team>-` services.
RESERVED |= {"code", "ui", "object"}
ENTITY_PATTERN = re.compile(r"[A-Za-z0-9_\-]{1,128}")
MODULE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class RegistryError(Exception):
    """A team folder or manifest the platform cannot use; the message says how to fix it."""


@dataclass(frozen=True)
class Team:
    name: str
    folder: Path
    # The module the code server loads (`dagster code-server start --module-name`).
    module: str
    # A prebuilt image (a team in its own repository); None when the image is built here.
    image: str | None
    # The W&B entity only this team may publish artifacts under (its signatures are refused
    # anywhere else); the team's name unless team.toml says otherwise.
    entity: str = ""

    @property
    def signing_key_variable(self) -> str:
        """The .env variable holding the team's private Ed25519 key (`make env` creates it)."""
        return f"WANDB_IO_SIGNING_KEY_{self.name.upper()}"

    @property
    def redis_password_variable(self) -> str:
        """The .env variable holding the password of the team's own Redis user."""
        return f"REDIS_PASSWORD_{self.name.upper()}"

    @property
    def postgres_password_variable(self) -> str:
        """The .env variable holding the password of the team's own Postgres role."""
        return f"POSTGRES_PASSWORD_{self.name.upper()}"

    @property
    def object_store_secret_variable(self) -> str:
        """The .env variable holding the secret key of the team's own object-store identity."""
        return f"OBJECT_STORE_SECRET_ACCESS_KEY_{self.name.upper()}"

    @property
    def object_store_access_key_variable(self) -> str:
        """The .env variable that may name the team's access key id (your own S3's IAM user);
        unset, the bundled store's `team_<team>`."""
        return f"OBJECT_STORE_ACCESS_KEY_ID_{self.name.upper()}"

    @property
    def built_here(self) -> bool:
        return self.image is None

    @property
    def services(self) -> tuple[str, str]:
        return service_names(self.name)


def service_names(team: str) -> tuple[str, str]:
    """A team's services, in compose and in local mode: its gRPC code server, and its workers
    (steps and warm runs, forked from one preloaded process)."""
    return (f"{team}-code", f"{team}-worker")


# The platform's own images, each built through one service that uses it: the platform image
# (init), the UI's login proxy and the object store. Built first, in this order.
PLATFORM_BUILD_SERVICES = ("init", "ui", "object-store")


def build_order(root: Path = REPO_ROOT) -> list[str]:
    """One service per image, the platform's first: `make build`, the tests and the benchmark
    build these, one at a time (the Makefile's build target says why)."""
    return [*PLATFORM_BUILD_SERVICES, *(f"{t.name}-code" for t in teams(root) if t.built_here)]


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise RegistryError(
            f"{name!r} is not a valid team name: use 2-30 lowercase letters and digits, starting "
            "with a letter (it becomes a Python package, a Celery queue and a host name), "
            "e.g. make new-team NAME=forecasting"
        )
    if keyword.iskeyword(name) or name in RESERVED:
        raise RegistryError(f"{name!r} is reserved; choose another team name.")


def read_manifest(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path} is not valid TOML ({error}); fix the file.") from error
    unknown = set(manifest) - MANIFEST_KEYS
    if unknown:
        raise RegistryError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a team manifest may set "
            f"only {', '.join(sorted(MANIFEST_KEYS))}."
        )
    for key, value in manifest.items():
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise RegistryError(f"{path}: {key} must be a one-line, non-empty string.")
    if "module" in manifest and not MODULE_PATTERN.fullmatch(manifest["module"]):
        raise RegistryError(f"{path}: module {manifest['module']!r} is not a Python module path.")
    return manifest


def load_team(folder: Path) -> Team:
    check_name(folder.name)
    manifest = read_manifest(folder)
    has_code = (folder / "pyproject.toml").exists()
    if not has_code and "image" not in manifest:
        raise RegistryError(
            f"{folder} has neither a pyproject.toml (a team built here) nor a {MANIFEST} naming "
            f"its prebuilt image (a team in its own repository). Add one, or remove the folder."
        )
    if has_code and "image" in manifest:
        raise RegistryError(
            f"{folder / MANIFEST} names an image, but the folder also holds the team's code. "
            "Keep either the code (built here) or the image (built in the team's repository)."
        )
    module = manifest.get("module", f"{folder.name}.definitions")
    entity = manifest.get("entity", folder.name)
    if not ENTITY_PATTERN.fullmatch(entity):
        raise RegistryError(f"{folder / MANIFEST}: entity {entity!r} is not a W&B entity name.")
    return Team(
        name=folder.name,
        folder=folder,
        module=module,
        image=manifest.get("image"),
        entity=entity,
    )


def teams(root: Path = REPO_ROOT) -> list[Team]:
    """Every registered team, sorted by name."""
    folder = root / TEAMS_FOLDER
    candidates = (
        sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    )
    return [
        load_team(path)
        for path in candidates
        if not path.name.startswith((".", "_"))
        and ((path / "pyproject.toml").exists() or (path / MANIFEST).exists())
    ]


def team_names(root: Path = REPO_ROOT) -> list[str]:
    return [team.name for team in teams(root)]


def find_team(name: str, root: Path = REPO_ROOT) -> Team:
    for team in teams(root):
        if team.name == name:
            return team
    known = ", ".join(team_names(root)) or "none"
    raise RegistryError(f"unknown team {name!r}; registered teams: {known}.")
