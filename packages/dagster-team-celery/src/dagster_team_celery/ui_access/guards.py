"""What Dagster's own per-location checks miss, checked for non-admins before the resolver runs.

Dagster checks the permission for the location of the object a mutation names, then acts on
what the instance stores, which is found by another key. Three such gaps:

- stopRunningSchedule and stopSensor check the schedule or sensor found by its origin id, and
  the instance stops the stored state found by the selector id: a bakery schedule's origin id
  with an ML schedule's selector id stops ML's. Here the two ids must name the same schedule,
  and the stored state's location must be one the caller may change.
- addDynamicPartition and deleteDynamicPartitions check the selector's location, but dynamic
  partitions are the instance's, by name: a bakery definition named like ML's would change ML's.
  Here every location using that name must be one the caller may change.
- A schedule's or sensor's future tick, a query field (DryRunInstigationTick.evaluationResult),
  runs its code in its team's code server with no permission check. Here it needs the dry-run
  permission of that location, as the dryRun mutations do.

Private APIs of dagster-graphql 1.13.27 (tests/test_ui_access.py): CompoundID, the dry-run
tick's _selector, and dynamic_partitions._repository_contains_dynamic_partitions_def.
"""

from collections.abc import Callable
from typing import Any

from dagster._core.definitions.selector import RepositorySelector
from dagster._core.remote_representation.handle import CompoundID
from dagster._core.workspace.permissions import Permissions
from dagster_graphql.schema import errors
from dagster_graphql.schema.util import ResolveInfo
from graphql import GraphQLError


class Refused(Exception):
    def __init__(self, permission: str, location: str | None, why: str) -> None:
        super().__init__(why)
        self.permission = permission
        self.location = location


def _ids(args: dict[str, Any], origin_key: str, selector_key: str) -> tuple[str, str] | None:
    """The origin and selector ids, read as the resolver reads them."""
    compound = args.get("id") or args.get(origin_key)
    if compound and CompoundID.is_valid_string(compound):
        parsed = CompoundID.from_string(compound)
        return parsed.remote_origin_id, parsed.selector_id
    if args.get(origin_key) and args.get(selector_key):
        return args[origin_key], args[selector_key]
    return None  # the resolver refuses it itself


def _stop_guard(kind: str, origin_key: str, selector_key: str, permission: str) -> Callable:
    def guard(info: ResolveInfo, args: dict[str, Any]) -> None:
        ids = _ids(args, origin_key, selector_key)
        if ids is None:
            return
        origin_id, selector_id = ids
        context = info.context
        for location in context.code_locations:
            for repository in location.get_repositories().values():
                items = (
                    repository.get_schedules() if kind == "schedule" else repository.get_sensors()
                )
                for item in items:
                    if item.get_remote_origin_id() == origin_id and item.selector_id != selector_id:
                        raise Refused(
                            permission,
                            location.name,
                            f"the {kind} origin id and selector id name different {kind}s",
                        )
        state = context.instance.get_instigator_state(origin_id, selector_id)
        if state is not None:
            stored_at = state.origin.repository_origin.code_location_origin.location_name
            if not context.has_permission_for_location(permission, stored_at):
                raise Refused(permission, stored_at, f"the stored {kind} is {stored_at}'s")

    return guard


def _partitions_guard(info: ResolveInfo, args: dict[str, Any]) -> None:
    # After dagster_graphql.schema (above): its modules and this one import each other.
    from dagster_graphql.implementation.execution.dynamic_partitions import (
        _repository_contains_dynamic_partitions_def as uses,
    )

    name, allowed = args.get("partitions_def_name"), Permissions.EDIT_DYNAMIC_PARTITIONS
    for location in info.context.code_locations:
        for repository in location.get_repositories():
            selector = RepositorySelector(location_name=location.name, repository_name=repository)
            if uses(info, selector, name) and not info.context.has_permission_for_location(
                allowed, location.name
            ):
                why = f"dynamic partitions {name!r} are also {location.name}'s"
                raise Refused(allowed, location.name, why)


MUTATION_GUARDS: dict[str, Callable[[ResolveInfo, dict[str, Any]], None]] = {
    "stopRunningSchedule": _stop_guard(
        "schedule", "schedule_origin_id", "schedule_selector_id", Permissions.STOP_RUNNING_SCHEDULE
    ),
    "stopSensor": _stop_guard(
        "sensor", "job_origin_id", "job_selector_id", Permissions.EDIT_SENSOR
    ),
    "addDynamicPartition": _partitions_guard,
    "deleteDynamicPartitions": _partitions_guard,
}


def guard_mutation(info: ResolveInfo, args: dict[str, Any]) -> Any | None:
    """An UnauthorizedError answer if the mutation must not run, else None."""
    guard = MUTATION_GUARDS.get(info.field_name)
    if guard is None:
        return None
    try:
        guard(info, args)
    except Refused as refused:
        info.context.record_refusal(refused.permission, refused.location, str(refused))
        return errors.GrapheneUnauthorizedError(message=f"Refused: {refused}")
    return None


def guard_dry_run(root: Any, info: ResolveInfo) -> None:
    """Raise unless the caller may dry-run the tick's schedule or sensor."""
    selector = root._selector
    schedule = hasattr(selector, "schedule_name")
    permission = Permissions.SCHEDULE_DRY_RUN if schedule else Permissions.SENSOR_DRY_RUN
    if not info.context.has_permission_for_location(permission, selector.location_name):
        raise GraphQLError(
            f"a {'schedule' if schedule else 'sensor'}'s next tick runs its code: it needs the "
            f"{permission} permission for code location {selector.location_name}"
        )
