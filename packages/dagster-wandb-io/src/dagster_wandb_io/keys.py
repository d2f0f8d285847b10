"""Who may sign what: each team's Ed25519 key, and the trust file every reader checks against.

A team signs with its own private key (``DAGSTER_WANDB_IO_SIGNING_KEY``, hex of the 32-byte
seed), which only that team's containers hold. Every reader loads the trust file
(``DAGSTER_WANDB_IO_TRUSTED_KEYS``): for each team its public key and the W&B entities it owns.
A signature counts only when it verifies with the producer's public key *and* the producer owns
the entity the artifact was published under, so no team can sign as another, or publish under
another team's entity with its own key.

The platform writes the trust file from the team registry (`make env`, `make new-team`); outside
the platform, `dagster-wandb-io keys generate` makes a key and a one-team trust file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ConfigurationError, SignatureError
from .naming import validate_path_component

PRIVATE_KEY_ENV = "DAGSTER_WANDB_IO_SIGNING_KEY"
# The same key in a file (a Docker or Swarm secret), for deployments that keep it out of the
# environment.
PRIVATE_KEY_FILE_ENV = "DAGSTER_WANDB_IO_SIGNING_KEY_FILE"
TRUSTED_KEYS_ENV = "DAGSTER_WANDB_IO_TRUSTED_KEYS"
ALLOW_UNSIGNED_ENV = "DAGSTER_WANDB_IO_ALLOW_UNSIGNED_PICKLES"
TRUST_FILE_FORMAT = 1
# A trust file lists a few public keys; anything larger is not one.
MAX_TRUST_FILE_BYTES = 1 << 20

KEY_HELP = (
    f"Each team signs with its own Ed25519 key: set {PRIVATE_KEY_ENV} to the team's private key"
    f" (or {PRIVATE_KEY_FILE_ENV} to a file holding it), and {TRUSTED_KEYS_ENV} to the trust"
    " file that lists every team's public key and entities. On the platform `make env` creates"
    " both; elsewhere run `dagster-wandb-io keys generate --team <team> --entity <entity>"
    " --trust-file <path> --private-key-file <path>`"
)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, non-secret fingerprint, so errors can say which key signed."""
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:16]


def generate_private_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes_raw().hex()


def public_key_of(private_key_hex: str) -> str:
    private_key = _parse_private_key(private_key_hex, source="the private key")
    return private_key.public_key().public_bytes_raw().hex()


def _key_bytes(value: object) -> bytes:
    """The 32 raw bytes of an Ed25519 key written in hex; ValueError says what is wrong."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    raw = bytes.fromhex(value.strip())
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes instead of 32")
    return raw


def _parse_private_key(value: str, *, source: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(_key_bytes(value))
    except ValueError as error:
        raise ConfigurationError(
            f"{source} is not an Ed25519 private key in hex (64 hex digits): {error}. {KEY_HELP}."
        ) from None


def _parse_public_key(value: object, *, team: str, path: Path) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(_key_bytes(value))
    except ValueError as error:
        raise ConfigurationError(
            f"The trust file {path} has an invalid public key for team {team!r} ({error})."
            " Regenerate it with `make env` (or `dagster-wandb-io keys generate`)."
        ) from None


@dataclass(frozen=True)
class TeamKey:
    team: str
    public_key: Ed25519PublicKey
    entities: frozenset[str]

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


@dataclass(frozen=True)
class TrustStore:
    path: Path
    teams: dict[str, TeamKey]

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        try:
            if path.stat().st_size > MAX_TRUST_FILE_BYTES:
                raise ValueError(f"larger than {MAX_TRUST_FILE_BYTES} bytes")
            data = json.loads(path.read_bytes())
            if data.get("format") != TRUST_FILE_FORMAT or not isinstance(data.get("teams"), dict):
                raise ValueError(f"expected {{'format': {TRUST_FILE_FORMAT}, 'teams': {{...}}}}")
        except (OSError, ValueError, AttributeError) as error:
            raise ConfigurationError(
                f"The trust file {path} ({TRUSTED_KEYS_ENV}) is unreadable or malformed:"
                f" {error}. {KEY_HELP}."
            ) from None
        teams: dict[str, TeamKey] = {}
        owners: dict[str, str] = {}
        for team, entry in data["teams"].items():
            entities = entry.get("entities") if isinstance(entry, dict) else None
            if not isinstance(entities, list):
                raise ConfigurationError(
                    f"The trust file {path} lists no entities for team {team!r}; regenerate it"
                    " with `make env`."
                )
            for entity in entities:
                validate_path_component(entity, what="entity")
                if owners.setdefault(entity, team) != team:
                    raise ConfigurationError(
                        f"The trust file {path} gives the entity {entity!r} to both"
                        f" {owners[entity]!r} and {team!r}; an entity has one owner."
                    )
            teams[team] = TeamKey(
                team=team,
                public_key=_parse_public_key(entry.get("public_key"), team=team, path=path),
                entities=frozenset(entities),
            )
        return cls(path=path, teams=teams)

    def owner_of(self, entity: str) -> str | None:
        return next((t.team for t in self.teams.values() if entity in t.entities), None)

    def verify(self, team: str, signature: bytes, message: bytes, *, what: str) -> None:
        """Raise unless ``team`` is known and signed ``message``."""
        known = self.teams.get(team)
        if known is None:
            raise SignatureError(
                f"{what} claims to be signed by team {team!r}, which the trust file"
                f" {self.path} does not list. Do not load it; re-materialize it from a trusted"
                " run, or add the team with `make new-team` / `make env`."
            )
        try:
            known.public_key.verify(signature, message)
        except InvalidSignature:
            raise SignatureError(
                f"The Ed25519 signature on {what} does not verify with team {team!r}'s public"
                f" key ({known.key_id}): it was tampered with, replayed from another artifact,"
                " or signed with another key. Do not load it; re-materialize it from a trusted"
                " run."
            ) from None

    def check_owner(self, team: str, entity: str, *, what: str) -> None:
        owner = self.owner_of(entity)
        if owner != team:
            raise SignatureError(
                f"{what} was signed by team {team!r}, but the entity {entity!r} belongs to"
                f" {owner!r} in the trust file {self.path}: a team may only publish under its"
                " own entity. Do not load it."
            )


@dataclass(frozen=True)
class Signer:
    team: str
    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def check_may_publish(self, trust: TrustStore, entity: str) -> None:
        """Refuse a write under another team's entity before anything is written."""
        owner = trust.owner_of(entity)
        if owner != self.team:
            raise ConfigurationError(
                f"Team {self.team!r} cannot publish artifacts under the W&B entity {entity!r}"
                f" ({'owned by ' + repr(owner) if owner else 'owned by no team'} in"
                f" {trust.path}). Set the IO manager's entity to one of"
                f" {sorted(trust.teams[self.team].entities)}, or give the entity to this team"
                " in the team registry."
            )


def load_trust(*, required: bool) -> TrustStore | None:
    raw = os.environ.get(TRUSTED_KEYS_ENV)
    if not raw:
        if required:
            raise ConfigurationError(
                f"No trust file is configured, so signatures cannot be checked. {KEY_HELP}."
            )
        return None
    return TrustStore.load(Path(raw))


def load_signer(trust: TrustStore | None, *, required: bool) -> Signer | None:
    """The signing identity of this process: its private key, and the team whose public key
    in the trust file matches it."""
    raw = os.environ.get(PRIVATE_KEY_ENV)
    key_file = os.environ.get(PRIVATE_KEY_FILE_ENV)
    if not raw and key_file:
        try:
            raw = Path(key_file).read_text()[:1024]
        except OSError as error:
            raise ConfigurationError(
                f"{PRIVATE_KEY_FILE_ENV}={key_file} cannot be read ({error.strerror}). {KEY_HELP}."
            ) from None
    if not raw:
        if required:
            raise ConfigurationError(
                f"Pickle-family outputs are signed, but {PRIVATE_KEY_ENV} is not set. {KEY_HELP}."
                f" (Only a deployment that accepts unsigned pickles sets {ALLOW_UNSIGNED_ENV}=1.)"
            )
        return None
    private_key = _parse_private_key(raw, source=PRIVATE_KEY_ENV)
    if trust is None:
        trust = load_trust(required=True)
        assert trust is not None
    mine = key_id(private_key.public_key())
    team = next((t.team for t in trust.teams.values() if t.key_id == mine), None)
    if team is None:
        raise ConfigurationError(
            f"The key in {PRIVATE_KEY_ENV} (public key id {mine}) belongs to no team in the trust"
            f" file {trust.path}. Use the team's own key from .env, or regenerate the trust file"
            " with `make env`."
        )
    return Signer(team=team, private_key=private_key)


def allow_unsigned_from_environment() -> bool:
    """Unsigned pickles are a deployment decision: never a run's or a launchpad user's."""
    value = os.environ.get(ALLOW_UNSIGNED_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigurationError(f"{ALLOW_UNSIGNED_ENV}={value!r}: set it to 1 or 0.")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with a file readable by its owner only from its first byte: the mode is
    given to open(2), so no moment exists where another user could read a secret in it (and
    the umask can only take bits away)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as private:
        private.write(text)


def write_trust_file(path: Path, teams: dict[str, tuple[str, list[str]]]) -> None:
    """Write ``{team: (public key hex, entities)}`` as a trust file, replacing it in place so a
    file bind-mounted into running containers shows the new content."""
    document = {
        "format": TRUST_FILE_FORMAT,
        "teams": {
            team: {"public_key": public, "entities": sorted(entities)}
            for team, (public, entities) in sorted(teams.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as trust_file:
        json.dump(document, trust_file, indent=1, sort_keys=True)
        trust_file.write("\n")


def provision_team_keys(
    trust_file: Path, teams: dict[str, list[str]], existing: dict[str, str] | None = None
) -> dict[str, str]:
    """Private keys for ``{team: entities}``, reusing ``existing`` ones, and the trust file
    that lists them. Returns ``{team: private key hex}``."""
    private = {team: (existing or {}).get(team) or generate_private_key() for team in teams}
    write_trust_file(
        trust_file,
        {team: (public_key_of(private[team]), entities) for team, entities in teams.items()},
    )
    return private


def signing_environment(directory: Path, team: str, entities: list[str]) -> dict[str, str]:
    """The environment of a one-team deployment (a test, a benchmark): a fresh key for
    ``team`` and a trust file in ``directory`` naming it the owner of ``entities``."""
    trust_file = directory / "trusted-keys.json"
    private = provision_team_keys(trust_file, {team: entities})
    return {PRIVATE_KEY_ENV: private[team], TRUSTED_KEYS_ENV: str(trust_file)}
