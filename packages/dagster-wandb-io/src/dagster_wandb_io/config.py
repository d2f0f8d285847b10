"""The `wandb_artifact_configuration` metadata: typed for users, validated for the IO manager.

The user's metadata is never mutated: parsing deep-copies it into frozen dataclasses.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .errors import ConfigurationError
from .serialization import ACCEPTED_SERIALIZATION_MODULES

CONFIG_KEY = "wandb_artifact_configuration"
# The seed guide also spells it this way in several examples.
CONFIG_KEY_ALIAS = "wandb_artifact_arguments"


class SerializationModule(TypedDict, total=False):
    """W&B Artifacts IO Manager configuration of the serialization module."""

    name: str
    parameters: dict[str, Any]


class PartitionConfiguration(TypedDict, total=False):
    """How to read one partition (or, under the key ``"*"``, every other partition)."""

    get: str
    get_path: str
    version: str
    alias: str


class WandbArtifactConfiguration(TypedDict, total=False):
    """W&B Artifacts IO Manager configuration. Useful for type checking."""

    name: str
    type: str
    description: str
    aliases: list[str]
    add_dirs: list[dict[str, Any]]
    add_files: list[dict[str, Any]]
    add_references: list[dict[str, Any]]
    serialization_module: SerializationModule
    partitions: dict[str, PartitionConfiguration]
    get: str
    get_path: str
    version: str
    alias: str
    # Reading only: another team's entity and project (defaults: this IO manager's own).
    entity: str
    project: str


WRITE_KEYS: tuple[str, ...] = (
    "name",
    "type",
    "description",
    "aliases",
    "add_dirs",
    "add_files",
    "add_references",
    "serialization_module",
    # Tolerated on outputs so one dict can be shared by writer and reader; ignored on write.
    "partitions",
)
READ_KEYS: tuple[str, ...] = (
    "name",
    "get",
    "get_path",
    "version",
    "alias",
    "partitions",
    "entity",
    "project",
)
PARTITION_KEYS: tuple[str, ...] = ("get", "get_path", "version", "alias")
SERIALIZATION_KEYS: tuple[str, ...] = ("name", "parameters")


def _reject_unknown(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigurationError(
            f"Unknown key(s) {unknown} in {where}. Allowed keys: {sorted(allowed)}."
        )


def extract(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The configuration dict from definition metadata, deep-copied."""
    if not metadata:
        return {}
    primary = metadata.get(CONFIG_KEY)
    alias = metadata.get(CONFIG_KEY_ALIAS)
    if primary is not None and alias is not None and primary != alias:
        raise ConfigurationError(
            f"Both {CONFIG_KEY!r} and {CONFIG_KEY_ALIAS!r} are set with different values."
            f" Keep only {CONFIG_KEY!r}."
        )
    raw = primary if primary is not None else alias
    if raw is None:
        return {}
    value = getattr(raw, "value", raw)  # tolerate dagster MetadataValue wrappers
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{CONFIG_KEY!r} must be a dict, got {type(value).__name__}. See"
            " `dagster_wandb_io.WandbArtifactConfiguration` for the keys."
        )
    return copy.deepcopy(dict(value))


def _str_or_none(cfg: Mapping[str, Any], key: str, where: str) -> str | None:
    value = cfg.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"`{key}` in {where} must be a string, got {value!r}.")
    return value


def _list_of_dicts(cfg: Mapping[str, Any], key: str) -> tuple[dict[str, Any], ...]:
    value = cfg.get(key) or []
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigurationError(
            f"`{key}` in {CONFIG_KEY} must be a list of dicts of keyword arguments for"
            f" `wandb.Artifact.{key[:-1]}`, got {value!r}."
        )
    return tuple(dict(v) for v in value)


@dataclass(frozen=True)
class WriteConfig:
    name: str | None = None
    type: str | None = None
    description: str | None = None
    aliases: tuple[str, ...] = ()
    add_dirs: tuple[dict[str, Any], ...] = ()
    add_files: tuple[dict[str, Any], ...] = ()
    add_references: tuple[dict[str, Any], ...] = ()
    serialization_module: str | None = None
    serialization_parameters: dict[str, Any] = field(default_factory=dict)


def parse_write_config(metadata: Mapping[str, Any] | None) -> WriteConfig:
    cfg = extract(metadata)
    where = f"{CONFIG_KEY} (writing an artifact)"
    _reject_unknown(where, cfg, WRITE_KEYS)
    aliases = cfg.get("aliases") or []
    if isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases):
        raise ConfigurationError(f"`aliases` in {where} must be a list of strings.")
    module_cfg = cfg.get("serialization_module") or {}
    if not isinstance(module_cfg, Mapping):
        raise ConfigurationError(
            f"`serialization_module` in {where} must be a dict like"
            " {'name': 'joblib', 'parameters': {'compress': 3}}."
        )
    _reject_unknown(f"{where} -> serialization_module", module_cfg, SERIALIZATION_KEYS)
    module_name = module_cfg.get("name")
    if module_name is not None and module_name not in ACCEPTED_SERIALIZATION_MODULES:
        raise ConfigurationError(
            f"Unknown serialization module {module_name!r}. Set `serialization_module.name`"
            f" to one of {list(ACCEPTED_SERIALIZATION_MODULES)}."
        )
    params = module_cfg.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            "`serialization_module.parameters` must be a dict of keyword arguments for the"
            " module's dump function, e.g. {'protocol': 4} or {'compress': 3}."
        )
    return WriteConfig(
        name=_str_or_none(cfg, "name", where),
        type=_str_or_none(cfg, "type", where),
        description=_str_or_none(cfg, "description", where),
        aliases=tuple(aliases),
        add_dirs=_list_of_dicts(cfg, "add_dirs"),
        add_files=_list_of_dicts(cfg, "add_files"),
        add_references=_list_of_dicts(cfg, "add_references"),
        serialization_module=module_name,
        serialization_parameters=dict(params),
    )


@dataclass(frozen=True)
class Selection:
    """What to read from one artifact: which version, and which part of it."""

    version: str | None = None
    alias: str | None = None
    get: str | None = None
    get_path: str | None = None

    @property
    def ref(self) -> str:
        return self.version or self.alias or "latest"


def _selection(cfg: Mapping[str, Any], where: str) -> Selection:
    sel = Selection(
        version=_str_or_none(cfg, "version", where),
        alias=_str_or_none(cfg, "alias", where),
        get=_str_or_none(cfg, "get", where),
        get_path=_str_or_none(cfg, "get_path", where),
    )
    if sel.version is not None and sel.alias is not None:
        raise ConfigurationError(
            f"Both `version` and `alias` are set in {where}. Use only one; without either,"
            " the `latest` version is read."
        )
    if sel.get is not None and sel.get_path is not None:
        raise ConfigurationError(
            f"Both `get` and `get_path` are set in {where}. Use only one; without either, the"
            " whole artifact (or its unpickled content) is returned."
        )
    return sel


@dataclass(frozen=True)
class ReadConfig:
    name: str | None = None
    selection: Selection = Selection()
    # Where another team published the artifact; None reads from this IO manager's own.
    entity: str | None = None
    project: str | None = None
    # Validated raw per-partition dicts: '*' is merged under each partition's own entry.
    partitions: dict[str, dict[str, str]] = field(default_factory=dict)
    has_partitions_config: bool = False


_EXCLUSIVE = (("get", "get_path"), ("version", "alias"))


def merge_partition_config(wildcard: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """A partition's own keys override the '*' defaults; setting one of a mutually exclusive
    pair (get/get_path, version/alias) drops the other one inherited from '*'."""
    merged = dict(wildcard)
    for a, b in _EXCLUSIVE:
        if a in own:
            merged.pop(b, None)
        if b in own:
            merged.pop(a, None)
    merged.update(own)
    return merged


def selection_from(cfg: Mapping[str, Any], where: str) -> Selection:
    return _selection(cfg, where)


def parse_read_config(metadata: Mapping[str, Any] | None) -> ReadConfig:
    cfg = extract(metadata)
    where = f"{CONFIG_KEY} (reading an artifact)"
    _reject_unknown(where, cfg, READ_KEYS)
    partitions_cfg = cfg.get("partitions")
    partitions: dict[str, dict[str, str]] = {}
    if partitions_cfg is not None:
        if not isinstance(partitions_cfg, Mapping):
            raise ConfigurationError(
                f"`partitions` in {where} must map partition keys (or '*') to dicts with"
                f" keys {list(PARTITION_KEYS)}."
            )
        for key, pcfg in partitions_cfg.items():
            pwhere = f"{where} -> partitions[{key!r}]"
            if not isinstance(pcfg, Mapping) or not pcfg:
                raise ConfigurationError(
                    f"The configuration of partition {key!r} in {where} is empty or not a"
                    f" dict. Give it at least one of {list(PARTITION_KEYS)}, or remove it."
                )
            _reject_unknown(pwhere, pcfg, PARTITION_KEYS)
            _selection(pcfg, pwhere)
            partitions[str(key)] = dict(pcfg)
    return ReadConfig(
        name=_str_or_none(cfg, "name", where),
        entity=_str_or_none(cfg, "entity", where),
        project=_str_or_none(cfg, "project", where),
        selection=_selection(cfg, where),
        partitions=partitions,
        has_partitions_config=partitions_cfg is not None,
    )
