"""A local stack's settings, and what follows from them: its state folder, secrets and ports,
and the environment each of its processes gets (the mirror of docker-compose.yml's)."""

import json
import os
import random
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import registry
from dagster_team_celery.deploy import object_store_identities, postgres_roles, redis_acl
from dagster_team_celery.platform_bucket import BUCKET_ENV, DEFAULT_STEP_OUTPUTS, STEP_OUTPUTS_ENV
from dagster_team_celery.runs.isolation import RUN_ISOLATION_ENV
from dagster_team_celery.settings import (
    BACKEND_URL_ENV,
    BROKER_URL_ENV,
    DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    VISIBILITY_TIMEOUT_ENV,
)
from dagster_wandb_io.artifact_objects import STORE_URL_ENV
from dagster_wandb_io.index_postgres import INDEX_URL_ENV
from dagster_wandb_io.keys import (
    PRIVATE_KEY_ENV,
    TRUSTED_KEYS_ENV,
    provision_team_keys,
    write_private,
)
from devstack import config
from devstack.health import liveness_file

POSTGRES_USER = "dagster"
POSTGRES_DB = "dagster"
# flower_password is Flower's HTTP login, flower_redis_password its Redis user's: separate, as
# compose's FLOWER_PASSWORD and FLOWER_REDIS_PASSWORD are. A secrets file from before one was
# added gets it at the next start (prepare_state). launcher_redis_password is the run launcher's
# (the daemon's and the webserver's), as compose's LAUNCHER_REDIS_PASSWORD.
SECRET_NAMES = (
    "postgres_password",
    "redis_password",
    "flower_password",
    "flower_redis_password",
    "launcher_redis_password",
    # The object store's administrator, as compose's OBJECT_STORE_ACCESS_KEY_ID and
    # OBJECT_STORE_SECRET_ACCESS_KEY, and the webserver's read-only identity.
    "object_store_access_key_id",
    "object_store_secret_access_key",
    "object_store_webserver_secret_access_key",
)
# The object store's bucket in local mode (compose: OBJECT_STORE_BUCKET).
OBJECT_STORE_BUCKET = "platform"
OBJECT_STORE_REGION = "us-east-1"


@dataclass
class StackSettings:
    name: str = "dev"
    state_root: Path = config.REPO_ROOT / ".devstack"
    webserver_port: int = 0  # 0: any free port
    flower_port: int = 0
    postgres_url: str | None = None  # use this server instead of starting one
    redis_url: str | None = None
    # An S3 endpoint to use instead of starting SeaweedFS; its credentials come from the
    # caller's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, its bucket from object_store_bucket.
    object_store_url: str | None = None
    object_store_bucket: str = OBJECT_STORE_BUCKET
    teams: list[str] | None = None  # default: config.teams(repo_root)
    fresh: bool = False  # wipe the state folder first
    flower: bool = True
    restart_crashed: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # The checkout whose dagster.yaml, workspace.yaml and code_locations/ to run.
    repo_root: Path = config.REPO_ROOT
    # Serve each team's code from a copy in the state folder (its venv stays the checkout's):
    # a test may then break a team's code without breaking it for whatever else reads the
    # checkout at the same time. `make dev` serves the checkout, so a Reload picks up edits.
    copy_team_code: bool = False
    # "warm": runs start in each team's warm run worker; "process": in a fresh subprocess of
    # the team's code server (config.RUN_LAUNCHERS).
    run_launcher: str = "warm"


# Below Linux's ephemeral range (32768-60999 by default), from which the kernel picks the source
# port of every outgoing connection: a port chosen there is free when chosen, but a service binds
# it up to minutes later (the webserver, after the code servers), and on a busy machine a client
# connection had taken it by then ("address already in use", seen in CI).
LISTEN_PORTS = range(16000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port no listener holds now, outside the ephemeral range, never handed out
    twice by this process."""
    while True:
        port = random.choice(LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((config.LOCAL_HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


class StackEnvironment:
    """The folders, secrets, ports and environment variables of one stack (``settings.name``)."""

    # The object store's master, volume and filer ports, their gRPC ports and the S3 gateway's
    # gRPC port (docker/object-store/serve.py), all on loopback.
    OBJECT_STORE_INTERNAL_PORTS = tuple(f"object-store-internal-{n}" for n in range(7))

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.state = self.settings.state_root / self.settings.name
        self.root = self.settings.repo_root
        self.teams = self.settings.teams or config.teams(self.root)
        self.ports: dict[str, int] = {}
        self.secrets: dict[str, str] = {}

    # ---- folders, secrets and ports -------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.state / "home"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def artifact_cache(self) -> Path:
        return self.state / "artifact-cache"

    @property
    def shared(self) -> Path:
        return self.state / "shared"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.state / "postgres-socket"

    @property
    def webserver_url(self) -> str:
        return f"http://{config.LOCAL_HOST}:{self.ports['webserver']}"

    @property
    def flower_url(self) -> str:
        return f"http://{config.LOCAL_HOST}:{self.ports['flower']}"

    @property
    def object_store_url(self) -> str:
        if self.settings.object_store_url:
            return self.settings.object_store_url.rstrip("/")
        return f"http://{config.LOCAL_HOST}:{self.ports['object-store']}"

    def object_store_credentials(self) -> dict[str, str]:
        if self.settings.object_store_url:
            return {
                name: os.environ[name]
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                if name in os.environ
            }
        return {
            "AWS_ACCESS_KEY_ID": self.secrets["object_store_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.secrets["object_store_secret_access_key"],
        }

    @property
    def flower_credentials(self) -> tuple[str, str]:
        return ("admin", self.secrets["flower_password"])

    def prepare_state(self) -> None:
        """The state folder (wiped first with ``fresh``), and the secrets it keeps between
        starts."""
        if self.settings.fresh and self.state.exists():
            shutil.rmtree(self.state)
        for folder in (self.home, self.logs, self.artifact_cache, self.shared):
            folder.mkdir(parents=True, exist_ok=True)
        if self.settings.copy_team_code:
            self.copy_team_code()
        secrets_file = self.state / "secrets.json"
        if secrets_file.exists():
            self.secrets = json.loads(secrets_file.read_text())
        for name in SECRET_NAMES:
            self.secrets.setdefault(name, secrets.token_hex(24))
        # As `make env` does: a key per team (kept between starts) and the trust file of their
        # public keys and entities.
        self.secrets["team_signing_keys"] = provision_team_keys(
            self.trust_file,
            {team: [self.team_entity(team)] for team in self.teams},
            self.secrets.get("team_signing_keys"),
        )
        # Each team's own Redis user (redis_acl.py); a team added later gets one at its start.
        known = self.secrets.get("team_redis_passwords", {})
        self.secrets["team_redis_passwords"] = {
            team: known.get(team) or secrets.token_hex(24) for team in self.teams
        }
        # And its own Postgres role (postgres_roles.py) and object-store identity
        # (object_store_identities.py), as `make env` gives them.
        for kind in ("team_postgres_passwords", "team_object_store_secrets"):
            known = self.secrets.get(kind, {})
            self.secrets[kind] = {
                team: known.get(team) or secrets.token_hex(24) for team in self.teams
            }
        write_private(secrets_file, json.dumps(self.secrets))

    def postgres_roles_script(self) -> str:
        """The teams' roles, as `make env` writes them for compose's init to apply."""
        postgres = self.postgres_parts()
        return postgres_roles.roles_script(
            postgres["user"],
            postgres["db"],
            self.secrets["team_postgres_passwords"],
            {team: [self.team_entity(team)] for team in self.teams},
        )

    def team_postgres_env(self, team: str) -> dict[str, str]:
        """The instance and the W&B index as the team's own role; with a Postgres passed in
        (``postgres_url``), which has no platform roles, its URL's user as every process."""
        if self.settings.postgres_url:
            return {}
        postgres = self.postgres_parts()
        role, password = redis_acl.team_user(team), self.secrets["team_postgres_passwords"][team]
        return {
            "DAGSTER_POSTGRES_USER": role,
            "DAGSTER_POSTGRES_PASSWORD": password,
            INDEX_URL_ENV: (
                f"postgresql://{role}:{password}@{postgres['host']}:{postgres['port']}/"
                f"{postgres['db']}"
            ),
        }

    @property
    def object_store_identities_file(self) -> Path:
        return self.state / "object-store-identities.json"

    def object_store_identities(self) -> str:
        """The bundled store's identities: each team's and the webserver's, as `make env`
        writes them for compose."""
        return object_store_identities.seaweedfs_identities(
            self.settings.object_store_bucket,
            object_store_identities.team_identities(
                self.secrets["team_object_store_secrets"],
                {team: [self.team_entity(team)] for team in self.teams},
            ),
            self.secrets["object_store_webserver_secret_access_key"],
        )

    def team_object_store_env(self, team: str) -> dict[str, str]:
        """The team's own object-store identity; with a store passed in (``object_store_url``),
        which has no platform identities, the caller's credentials as every process."""
        if self.settings.object_store_url:
            return {}
        return {
            "AWS_ACCESS_KEY_ID": object_store_identities.team_access_key(team),
            "AWS_SECRET_ACCESS_KEY": self.secrets["team_object_store_secrets"][team],
        }

    def webserver_env(self) -> dict[str, str]:
        """The webserver's: the run launcher (Terminate), and an object-store identity that
        only reads the teams' step logs. No UI roles: local mode's webserver is reached only
        from this machine, by the one person who started it."""
        if self.settings.object_store_url:
            return {**self.platform_env(), "DAGSTER_UI_ROLES": "off"}
        return {
            **self.platform_env(),
            "DAGSTER_UI_ROLES": "off",
            "AWS_ACCESS_KEY_ID": object_store_identities.WEBSERVER_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secrets["object_store_webserver_secret_access_key"],
        }

    def redis_acl(self) -> str:
        """The Redis users: the operator's (``default``), Flower's, the run launcher's, and one
        per team."""
        return redis_acl.acl_file(
            self.secrets["redis_password"],
            self.secrets["flower_redis_password"],
            self.secrets["launcher_redis_password"],
            self.secrets["team_redis_passwords"],
        )

    @property
    def trust_file(self) -> Path:
        return self.state / "trusted-keys.json"

    def team_entity(self, team: str) -> str:
        """The entity the registry gives the team; a test's ad-hoc team owns its own name."""
        try:
            known = registry.teams(self.settings.repo_root)
        except registry.RegistryError:
            known = []
        return next((t.entity for t in known if t.name == team), team)

    def allocate_ports(self) -> None:
        self.ports = {
            "postgres": free_port(),
            "redis": free_port(),
            "object-store": free_port(),
            **{name: free_port() for name in self.OBJECT_STORE_INTERNAL_PORTS},
            "webserver": self.settings.webserver_port or free_port(),
            "flower": self.settings.flower_port or free_port(),
            config.PLATFORM_CODE_SERVICE: free_port(),
            **{f"{team}-code": free_port() for team in self.teams},
        }

    # ---- environment ----------------------------------------------------------------------

    def postgres_parts(self) -> dict[str, str]:
        if self.settings.postgres_url:
            url = urlsplit(self.settings.postgres_url)
            return {
                "host": url.hostname or config.LOCAL_HOST,
                "port": str(url.port or 5432),
                "user": url.username or POSTGRES_USER,
                "password": url.password or "",
                "db": url.path.lstrip("/") or POSTGRES_DB,
            }
        return {
            "host": config.LOCAL_HOST,
            "port": str(self.ports["postgres"]),
            "user": POSTGRES_USER,
            "password": self.secrets["postgres_password"],
            "db": POSTGRES_DB,
        }

    def redis_base_url(self, user: str = "", password: str | None = None) -> str:
        """A Redis URL without a database number (the broker uses /0, results /1); the
        operator's unless a user is given. A Redis passed in (``redis_url``) has no platform
        users: every process then uses its URL, and teams are not confined to their keys."""
        if self.settings.redis_url:
            url = urlsplit(self.settings.redis_url)
            return f"{url.scheme}://{url.netloc}"
        password = self.secrets["redis_password"] if password is None else password
        return redis_acl.redis_url(user, password, config.LOCAL_HOST, self.ports["redis"])

    def team_redis_env(self, team: str) -> dict[str, str]:
        """The team's broker and result URLs, as its own Redis user."""
        base = self.redis_base_url(
            redis_acl.team_user(team), self.secrets["team_redis_passwords"][team]
        )
        return {BROKER_URL_ENV: f"{base}/0", BACKEND_URL_ENV: f"{base}/1"}

    def launcher_redis_env(self) -> dict[str, str]:
        """How the run launcher reaches every team's run queue: as its own Redis user."""
        base = self.redis_base_url(redis_acl.LAUNCHER_USER, self.secrets["launcher_redis_password"])
        return {BROKER_URL_ENV: f"{base}/0", BACKEND_URL_ENV: f"{base}/1"}

    def flower_redis_url(self) -> str:
        password = self.secrets["flower_redis_password"]
        return f"{self.redis_base_url(redis_acl.FLOWER_USER, password)}/0"

    def dagster_env(self) -> dict[str, str]:
        """What every Dagster process gets; the mirror of x-dagster-env in docker-compose.yml."""
        postgres = self.postgres_parts()
        inherited = {
            key: value
            for key, value in os.environ.items()
            if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "DAGSTER_HOME")
        }
        return {
            **inherited,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_HOST": postgres["host"],
            "DAGSTER_POSTGRES_PORT": postgres["port"],
            "DAGSTER_POSTGRES_USER": postgres["user"],
            "DAGSTER_POSTGRES_PASSWORD": postgres["password"],
            "DAGSTER_POSTGRES_DB": postgres["db"],
            "DAGSTER_STORAGE_DIR": str(self.shared / "storage"),
            "DAGSTER_COMPUTE_LOGS_DIR": str(self.shared / "compute_logs"),
            # The mirror of compose's object-store settings
            # (dagster_team_celery/platform_bucket.py).
            "AWS_ENDPOINT_URL": self.object_store_url,
            **self.object_store_credentials(),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", OBJECT_STORE_REGION),
            BUCKET_ENV: self.settings.object_store_bucket,
            STEP_OUTPUTS_ENV: os.environ.get(STEP_OUTPUTS_ENV, DEFAULT_STEP_OUTPUTS),
            **self.wandb_io_shared_env(),
            # As compose does: the caller's value, else the package's default.
            VISIBILITY_TIMEOUT_ENV: os.environ.get(
                VISIBILITY_TIMEOUT_ENV, str(DEFAULT_VISIBILITY_TIMEOUT_SECONDS)
            ),
            **self.settings.extra_env,
        }

    def team_code_dir(self, team: str) -> Path:
        """The folder whose ``src`` the team's processes import (see ``copy_team_code``)."""
        if self.settings.copy_team_code:
            return self.state / "code" / team
        return config.team_dir(team, self.root)

    def copy_team_code(self) -> None:
        for team in self.teams:
            copy = self.team_code_dir(team)
            shutil.rmtree(copy, ignore_errors=True)
            copy.mkdir(parents=True)
            # dg finds the project (and its defs folder) from the pyproject beside src.
            shutil.copy2(config.team_dir(team, self.root) / "pyproject.toml", copy)
            shutil.copytree(
                config.team_dir(team, self.root) / "src",
                copy / "src",
                ignore=shutil.ignore_patterns("__pycache__"),
            )

    def team_code_env(self, team: str) -> dict[str, str]:
        """PYTHONPATH comes before the venv's editable install of the checkout's src."""
        if not self.settings.copy_team_code:
            return {}
        return {"PYTHONPATH": str(self.team_code_dir(team) / "src")}

    def team_tmpdir(self, team: str) -> Path:
        path = self.state / "tmp" / team
        path.mkdir(parents=True, exist_ok=True)
        return path

    def team_env(self, team: str) -> dict[str, str]:
        """What team code gets on top; the mirror of x-team-env in docker-compose.yml."""
        return {
            **self.dagster_env(),
            "DAGSTER_TEAM": team,
            **self.team_redis_env(team),
            **self.team_postgres_env(team),
            **self.team_object_store_env(team),
            "DAGSTER_WANDB_IO_BASE_DIR": str(self.artifact_cache),
            PRIVATE_KEY_ENV: self.secrets["team_signing_keys"][team],
            TRUSTED_KEYS_ENV: str(self.trust_file),
            "WANDB_MODE": "offline",
            "WANDB_API_KEY": "",
            "WANDB_SILENT": "true",
            "DAGSTER_CELERY_LIVENESS_FILE": str(liveness_file(self.state, team)),
            # Per team, so a test can tell what a team's processes wrote to temporary files.
            "TMPDIR": str(self.team_tmpdir(team)),
            **self.team_code_env(team),
            **self.settings.extra_env,
        }

    def wandb_io_shared_env(self) -> dict[str, str]:
        """Where offline W&B artifacts and their index live, shared by every host: the mirror
        of compose's DAGSTER_WANDB_IO_STORE_URL and DAGSTER_WANDB_IO_INDEX_URL."""
        postgres = self.postgres_parts()
        return {
            STORE_URL_ENV: f"s3://{self.settings.object_store_bucket}/wandb-artifacts",
            INDEX_URL_ENV: (
                f"postgresql://{postgres['user']}:{postgres['password']}@{postgres['host']}:"
                f"{postgres['port']}/{postgres['db']}"
            ),
        }

    def platform_code_env(self) -> dict[str, str]:
        """The platform code location's, whose runs are its subprocesses: the shared cache
        they keep within its retention; the mirror of platform-code in docker-compose.yml."""
        return {**self.dagster_env(), "DAGSTER_WANDB_IO_BASE_DIR": str(self.artifact_cache)}

    def platform_env(self) -> dict[str, str]:
        """The webserver's and the daemon's environment: they load the run launcher."""
        return {
            **self.dagster_env(),
            **self.launcher_redis_env(),
            # Local mode starts no containers: dagster.yaml's launcher is always warm here.
            RUN_ISOLATION_ENV: "warm",
            "PYTHONPATH": config.DEVSTACK_PYTHONPATH,
        }
