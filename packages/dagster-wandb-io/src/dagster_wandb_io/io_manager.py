"""The W&B Artifacts IO manager (Pythonic `WandbArtifactsIOManager` + the seed's legacy name)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

from dagster import (
    Array,
    ConfigurableIOManager,
    Field,
    InitResourceContext,
    InputContext,
    Int,
    Noneable,
    OutputContext,
    String,
    io_manager,
)
from pydantic import Field as PydanticField
from pydantic import PrivateAttr

from . import partitions as partition_rules
from .cache import BASE_DIR_ENV, Layout, resolve_base_dir
from .config import ReadConfig, Selection, WriteConfig, parse_read_config, parse_write_config
from .errors import (
    ArtifactNotFoundError,
    ConfigurationError,
    WandbArtifactsIOManagerError,
)
from .keys import allow_unsigned_from_environment
from .metadata import output_metadata
from .naming import (
    artifact_name_for_asset_key,
    artifact_name_for_partition,
    run_alias,
    validate_artifact_name,
)
from .resources import WandbResource, normalize_mode
from .runs import RunSpec, build_run_spec
from .store import ArtifactStore, StoreSettings, shared_storage_from_environment


def _step_run_id(context: InputContext | OutputContext) -> str | None:
    if isinstance(context, OutputContext):
        try:
            return context.run_id
        except Exception:
            return None
    try:
        return context.step_context.run_id
    except Exception:
        return None


class WandbArtifactsIOManager(ConfigurableIOManager):
    """Reads and writes W&B Artifacts through a cache shared by every process on the volume."""

    wandb_resource: WandbResource | None = PydanticField(
        default=None, description="W&B credentials/host/mode. Defaults to WandbResource()."
    )
    entity: str | None = PydanticField(
        default=None, description="W&B entity. Else the resource's, else WANDB_ENTITY."
    )
    project: str | None = PydanticField(
        default=None, description="W&B project. Else the resource's, else WANDB_PROJECT."
    )
    base_dir: str | None = PydanticField(
        default=None,
        description=f"Cache/staging directory. Else ${BASE_DIR_ENV}, else $DAGSTER_HOME.",
    )
    cache_duration_in_minutes: int | None = PydanticField(
        default=None,
        description="How long unused cache entries are kept (0 = evict at the next eviction"
        " pass). Defaults to 30 days.",
    )
    run_id: str | None = PydanticField(
        default=None, description="W&B run id. Defaults to the Dagster run id."
    )
    wandb_run_id: str | None = PydanticField(
        default=None, description="Alias of `run_id` (the seed uses both spellings)."
    )
    run_name: str | None = PydanticField(
        default=None, description="W&B run name. Defaults to dagster-run-<first 8 of run id>."
    )
    run_tags: list[str] | None = PydanticField(
        default=None, description="Extra W&B run tags; `dagster_wandb` is always added."
    )
    mode: str | None = PydanticField(
        default=None, description="'online' or 'offline'; overrides the resource and WANDB_MODE."
    )
    # There is no `allow_unsigned_pickles` field: config fields can be set from run config,
    # which anyone with the launchpad writes. Only the deployment's environment can allow
    # unsigned pickles (keys.ALLOW_UNSIGNED_ENV).

    _stores: dict[str, ArtifactStore] = PrivateAttr(default_factory=dict)

    # ----------------------------------------------------------------- settings

    def _resource(self) -> WandbResource:
        return self.wandb_resource or WandbResource()

    def _entity_project(self) -> tuple[str, str]:
        res = self._resource()
        entity = self.entity or res.entity or os.environ.get("WANDB_ENTITY")
        project = self.project or res.project or os.environ.get("WANDB_PROJECT")
        missing = [n for n, v in (("entity", entity), ("project", project)) if not v]
        if missing:
            raise ConfigurationError(
                f"The W&B {' and '.join(missing)} is not set. Configure the `wandb_config`"
                " resource (make_values_resource(entity=str, project=str)), or set"
                " `entity`/`project` on WandbArtifactsIOManager or WandbResource, or set"
                " WANDB_ENTITY / WANDB_PROJECT."
            )
        assert entity is not None and project is not None
        return entity, project

    def _mode(self) -> str:
        return normalize_mode(self.mode) or self._resource().resolved_mode()

    def _settings(self) -> StoreSettings:
        entity, project = self._entity_project()
        res = self._resource()
        if self.cache_duration_in_minutes is not None and self.cache_duration_in_minutes < 0:
            raise ConfigurationError("`cache_duration_in_minutes` must be >= 0.")
        return StoreSettings(
            base_dir=resolve_base_dir(self.base_dir),
            mode="offline" if self._mode() == "offline" else "online",
            entity=entity,
            project=project,
            host=res.host,
            api_key=res.resolved_api_key(),
            ttl_minutes=self.cache_duration_in_minutes,
            allow_unsigned=allow_unsigned_from_environment(),
            **shared_storage_from_environment(),
        )

    def get_store(self) -> ArtifactStore:
        settings = self._settings()
        key = repr(settings)
        store = self._stores.get(key)
        if store is None:
            client = None
            if settings.mode == "online":
                client = self._resource().get_client(Layout(settings.base_dir))
            store = ArtifactStore(settings, client)
            self._stores[key] = store
        return store

    def _run_spec(self, dagster_run_id: str | None) -> RunSpec:
        if self.run_id and self.wandb_run_id and self.run_id != self.wandb_run_id:
            raise ConfigurationError(
                f"`run_id` ({self.run_id!r}) and `wandb_run_id` ({self.wandb_run_id!r}) are"
                " both set and differ. Set only one."
            )
        entity, project = self._entity_project()
        res = self._resource()
        return build_run_spec(
            entity=entity,
            project=project,
            dagster_run_id=dagster_run_id or f"no-run-{uuid.uuid4().hex[:8]}",
            host=res.host,
            api_key=res.resolved_api_key(),
            run_id=self.run_id or self.wandb_run_id,
            run_name=self.run_name,
            run_tags=self.run_tags,
        )

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    # ----------------------------------------------------------------- writing

    def _output_name(self, context: OutputContext, config: WriteConfig) -> str:
        if context.has_asset_key:
            if config.name is not None:
                raise ConfigurationError(
                    "`name` is set in `wandb_artifact_configuration`, but this output is an"
                    f" asset ({context.asset_key.to_user_string()}) and artifacts of assets are"
                    " named after the asset key. Remove `name`."
                )
            name = artifact_name_for_asset_key(context.asset_key.path)
        else:
            if config.name is None:
                raise ConfigurationError(
                    "`name` is missing in `wandb_artifact_configuration` (Out metadata). An"
                    " @op output needs it to name the artifact; or use an @asset, which is"
                    " named after its key."
                )
            name = validate_artifact_name(config.name)
        if context.has_asset_partitions:
            if not context.has_partition_key:
                raise WandbArtifactsIOManagerError(
                    "This output covers several partitions in one run, but the W&B IO manager"
                    " writes one artifact per partition. Launch the backfill as one run per"
                    " partition (multi-run backfill policy)."
                )
            return artifact_name_for_partition(name, context.asset_partition_key)
        if context.has_partition_key:
            return artifact_name_for_partition(name, context.partition_key)
        return name

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            context.log.warning(
                "The output given to the W&B IO manager is None, so no artifact is written."
            )
            return
        config = parse_write_config(context.definition_metadata)
        name = self._output_name(context, config)
        store = self.get_store()
        run_id = _step_run_id(context)
        run = self._run_spec(run_id)
        # Checked first to spare serializing a value that will not be published; the write
        # checks again in the index update that publishes, for two executions at once.
        result = store.published_in_run(name, run) or store.write(
            obj, name=name, config=config, run=run, log=context.log.warning, once_per_run=True
        )
        if result.reused_earlier:
            context.log.warning(
                f"This run already published W&B artifact {result.entity}/{result.project}/"
                f"{result.name}:{result.version}; the step ran again (a redelivered Celery task"
                " or a retry), and its new value is not published: every reader of this run"
                " sees the first one."
            )
        else:
            context.log.info(
                f"Wrote W&B artifact {result.entity}/{result.project}/{result.name}:"
                f"{result.version} ({'offline' if result.offline else 'online'})"
            )
        context.add_output_metadata(output_metadata(result, run_id or result.run.id))

    # ----------------------------------------------------------------- reading

    def _input_name(self, context: InputContext, config: ReadConfig) -> tuple[str, Selection]:
        if context.has_asset_key:
            if config.name is not None:
                raise ConfigurationError(
                    "`name` is set in `wandb_artifact_configuration`, but this input reads the"
                    f" asset {context.asset_key.to_user_string()}, whose key names the artifact."
                    " Remove `name` (or read it from an @op input instead)."
                )
            return artifact_name_for_asset_key(context.asset_key.path), config.selection
        if config.name is not None:
            return validate_artifact_name(config.name), config.selection
        upstream = context.upstream_output
        if upstream is not None:
            up_config = parse_write_config(upstream.definition_metadata)
            if up_config.name is not None:
                sel = config.selection
                if sel.version is None and sel.alias is None:
                    # The exact version the upstream step of that run wrote, not whatever
                    # `latest` is now (another run may have written since).
                    sel = Selection(
                        alias=run_alias(upstream.run_id), get=sel.get, get_path=sel.get_path
                    )
                return validate_artifact_name(up_config.name), sel
        raise ConfigurationError(
            "`name` is missing in `wandb_artifact_configuration` (In metadata). An @op input"
            " must name the artifact it reads, e.g. In(metadata={'wandb_artifact_configuration':"
            " {'name': 'my_artifact'}})."
        )

    def load_input(self, context: InputContext) -> Any:
        config = parse_read_config(context.definition_metadata)
        store = self.get_store()
        run = self._run_spec(_step_run_id(context))
        if context.has_asset_key and context.has_asset_partitions:
            return self._load_partitions(context, config, store, run)
        partition_rules.check_unpartitioned_read(config)
        name, selection = self._input_name(context, config)
        before = (store.stats.bytes_downloaded, store.stats.files_downloaded)
        value = store.read(
            name,
            selection,
            run=run,
            log=context.log.warning,
            entity=config.entity,
            project=config.project,
        )
        fetched = store.stats.bytes_downloaded - before[0]
        if fetched:
            # What crossed the network for this input; nothing is logged for a cache hit.
            files = store.stats.files_downloaded - before[1]
            context.log.info(
                f"Fetched {fetched} bytes ({files} files) of {name} into this host's artifact cache"
            )
        return value

    def _load_partitions(
        self, context: InputContext, config: ReadConfig, store: ArtifactStore, run: RunSpec
    ) -> Any:
        keys = list(context.asset_partition_keys)
        if not keys:
            return None
        partition_rules.check_partitioned_read(config, keys)
        if config.name is not None:
            base = validate_artifact_name(config.name)
        else:
            base = artifact_name_for_asset_key(context.asset_key.path)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        values: dict[str, Any] = {}
        missing: list[str] = []
        for key in keys:
            selection = partition_rules.selection_for(key, config)
            name = artifact_name_for_partition(base, key)
            try:
                values[key] = store.read(
                    name,
                    selection,
                    run=run,
                    log=context.log.warning,
                    entity=config.entity,
                    project=config.project,
                )
            except ArtifactNotFoundError:
                missing.append(str(key))
        if missing and not allow_missing:
            raise ArtifactNotFoundError(
                f"{len(missing)} of {len(keys)} partitions of {base} have no artifact:"
                f" {missing[:20]}{' ...' if len(missing) > 20 else ''}. Materialize them first,"
                " or set `allow_missing_partitions: True` in the input's metadata to skip them."
            )
        # Dagster's convention (UPathIOManager): one partition -> the value, several -> a dict.
        if len(keys) == 1:
            return values.get(keys[0])
        return values


@io_manager(
    required_resource_keys={"wandb_resource", "wandb_config"},
    description="IO manager to read and write W&B Artifacts",
    config_schema={
        "base_dir": Field(
            String,
            is_required=False,
            description=f"Base directory for the shared cache. Else ${BASE_DIR_ENV}, else"
            " $DAGSTER_HOME.",
        ),
        "cache_duration_in_minutes": Field(
            Int,
            is_required=False,
            description="How long unused cache entries are kept by the eviction job (0 = no"
            " caching). Defaults to 30 days.",
        ),
        "run_id": Field(String, is_required=False, description="W&B run id (resumable)."),
        "wandb_run_id": Field(String, is_required=False, description="Alias of run_id."),
        "run_name": Field(String, is_required=False, description="W&B run display name."),
        "run_tags": Field(Array(String), is_required=False, description="Extra W&B run tags."),
        "mode": Field(Noneable(String), is_required=False, description="'online' or 'offline'."),
        "entity": Field(String, is_required=False, description="Overrides wandb_config."),
        "project": Field(String, is_required=False, description="Overrides wandb_config."),
    },
)
def wandb_artifacts_io_manager(context: InitResourceContext) -> Iterator[WandbArtifactsIOManager]:
    """Dagster IO manager to create and consume W&B Artifacts (seed-compatible wrapper around
    `WandbArtifactsIOManager`)."""
    cfg = dict(context.resource_config or {})
    values = context.resources.wandb_config or {}
    resource = context.resources.wandb_resource
    if not isinstance(resource, WandbResource):
        raise ConfigurationError(
            "The `wandb_resource` resource must be dagster_wandb_io's `wandb_resource` or"
            " `WandbResource`."
        )
    manager = WandbArtifactsIOManager(
        wandb_resource=resource,
        entity=cfg.pop("entity", None) or values.get("entity"),
        project=cfg.pop("project", None) or values.get("project"),
        **cfg,
    )
    try:
        yield manager
    finally:
        manager.close()
