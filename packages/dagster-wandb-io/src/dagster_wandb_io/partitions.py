"""Partition handling: which artifact and which version each partition key reads."""

from __future__ import annotations

from collections.abc import Sequence

from .config import ReadConfig, Selection, merge_partition_config, selection_from
from .errors import ConfigurationError
from .naming import partition_suffix

WILDCARD = "*"


def selection_for(partition_key: str, config: ReadConfig) -> Selection:
    """The partition's own entry (by key, or by its dotted artifact suffix) merged over '*';
    with neither, the latest version, read whole."""
    partitions = config.partitions
    own: dict[str, str] = {}
    for candidate in (str(partition_key), partition_suffix(partition_key)):
        if candidate in partitions:
            own = partitions[candidate]
            break
    merged = merge_partition_config(partitions.get(WILDCARD, {}), own)
    if not merged:
        return Selection()
    return selection_from(
        merged, f"wandb_artifact_configuration -> partitions[{str(partition_key)!r}]"
    )


def check_partitioned_read(config: ReadConfig, keys: Sequence[str]) -> None:
    sel = config.selection
    misplaced = [
        k
        for k, v in (
            ("get", sel.get),
            ("get_path", sel.get_path),
            ("version", sel.version),
            ("alias", sel.alias),
        )
        if v is not None
    ]
    if misplaced:
        raise ConfigurationError(
            f"{misplaced} are set at the top of `wandb_artifact_configuration` while reading a"
            " partitioned asset. Put them per partition under `partitions`, e.g."
            " {'partitions': {'*': {'get': 'my_table'}, '2023-01-01': {'version': 'v0'}}}."
        )
    known = {str(k) for k in keys} | {partition_suffix(k) for k in keys} | {WILDCARD}
    unknown = sorted(set(config.partitions) - known)
    if unknown:
        shown = sorted(str(k) for k in keys)[:20]
        raise ConfigurationError(
            f"`partitions` configures {unknown}, which are not among the partitions being read"
            f" ({shown}{' ...' if len(keys) > 20 else ''}). Fix the keys, or use '*' for"
            " every partition."
        )


def check_unpartitioned_read(config: ReadConfig) -> None:
    if config.has_partitions_config:
        raise ConfigurationError(
            "`partitions` is set in `wandb_artifact_configuration`, but this input does not"
            " read a partitioned asset. Remove it, or use `version`/`alias`/`get`/`get_path`"
            " at the top level."
        )
