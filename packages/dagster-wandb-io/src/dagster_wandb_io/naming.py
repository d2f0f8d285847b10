"""Artifact names derived from Dagster asset keys and partition keys.

Mapping (documented in the README):

* one-part asset key ``features`` -> ``features`` (the seed's behaviour, so SourceAssets can
  name existing W&B artifacts directly);
* multi-part key ``team_a/features`` -> ``team_a--features``. Parts may not contain ``--`` (nor
  start or end with ``-``), and one-part keys may not contain ``--`` either, so two different
  asset keys never map to the same artifact;
* partition ``2023-01-01`` -> ``<name>.2023-01-01``; multi-dimensional keys are dotted in
  dimension-name order (``my_asset.car.blue``). Characters W&B does not allow in names are
  written as ``_XX_`` (hex of each UTF-8 byte).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import ConfigurationError

KEY_SEPARATOR = "--"
# Matched whole (fullmatch): `$` would also match before a trailing newline.
_ALLOWED_NAME = re.compile(r"[A-Za-z0-9_\-.]+")
_ALLOWED_PARTITION_CHAR = re.compile(r"[A-Za-z0-9_\-]")
MAX_NAME_LENGTH = 128
# Names that are folders of their own in the cache, but mean "here" and "up" to a file system.
_DOT_NAMES = (".", "..")


def _is_safe(name: object) -> bool:
    return (
        isinstance(name, str)
        and _ALLOWED_NAME.fullmatch(name) is not None
        and name not in _DOT_NAMES
    )


def validate_path_component(value: str, *, what: str) -> str:
    """An entity, project or run id: each becomes a folder under the shared cache, so one that
    could climb out of it (``..``, ``a/b``, an absolute path) is refused before anything is
    written."""
    if not _is_safe(value) or len(value) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"Invalid W&B {what} {value!r}: it names a folder in the shared artifact cache, so "
            f"it may only contain letters, digits, '_', '-' and '.' (at most {MAX_NAME_LENGTH}),"
            f" and may not be '.' or '..'. Fix the {what} in the IO manager's or the resource's"
            " configuration."
        )
    return value


def validate_artifact_name(name: str, *, what: str = "artifact name") -> str:
    if not _is_safe(name):
        raise ConfigurationError(
            f"Invalid {what} {name!r}: W&B artifact names may only contain letters, digits,"
            " '_', '-' and '.', and may not be '.' or '..'. Rename it, or set `name` in"
            " `wandb_artifact_configuration`."
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"The {what} {name!r} is longer than {MAX_NAME_LENGTH} characters. Use a shorter"
            " asset key or set `name` in `wandb_artifact_configuration`."
        )
    return name


def artifact_name_for_asset_key(path: Sequence[str]) -> str:
    parts = list(path)
    if not parts:
        raise ConfigurationError("An empty asset key cannot name an artifact.")
    for part in parts:
        validate_artifact_name(part, what=f"asset key part of {'/'.join(parts)!r}")
        if KEY_SEPARATOR in part or (
            len(parts) > 1 and (part.startswith("-") or part.endswith("-"))
        ):
            raise ConfigurationError(
                f"The asset key {'/'.join(parts)!r} cannot be mapped to an artifact name:"
                f" its part {part!r} contains {KEY_SEPARATOR!r} (or starts/ends with '-'),"
                " which is reserved to join the parts of multi-part keys. Rename the asset."
            )
    return validate_artifact_name(KEY_SEPARATOR.join(parts))


def _encode_partition_value(value: str) -> str:
    out = []
    for ch in value:
        if _ALLOWED_PARTITION_CHAR.match(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02X}_" for b in ch.encode())
    return "".join(out)


def partition_suffix(partition_key: str) -> str:
    keys_by_dimension = getattr(partition_key, "keys_by_dimension", None)
    if keys_by_dimension:
        values = [v for _, v in sorted(keys_by_dimension.items())]
    else:
        values = str(partition_key).split("|")
    return ".".join(_encode_partition_value(v) for v in values)


def artifact_name_for_partition(base: str, partition_key: str) -> str:
    return validate_artifact_name(f"{base}.{partition_suffix(partition_key)}")


def run_alias(dagster_run_id: str) -> str:
    return f"dagster-run-{dagster_run_id[:8]}"
