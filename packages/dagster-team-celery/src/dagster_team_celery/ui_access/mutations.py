"""What each of the UI's GraphQL mutations needs, checked before Dagster runs it.

Every mutation of the installed Dagster's schema is listed here with the Dagster permission it
asks for (dagster._core.workspace.permissions.Permissions). Dagster's own resolvers then check
that permission for each code location the mutation touches (the selector's location, or the
location of the run, backfill, schedule, sensor or asset it names), against the caller's
per-location permissions (request_context.py). What this module adds:

- deny by default: a mutation not listed (one a Dagster upgrade brings) is refused for everyone
  but admins, before it runs; tests/test_ui_access.py fails until it is classified;
- an early, clear refusal (HTTP 403) when the caller has the permission nowhere;
- the operation's names and permissions for the audit log.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dagster._core.workspace.permissions import LOCATION_SCOPED_PERMISSIONS, Permissions
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from dagster_team_celery.ui_access.people import Person

ANYONE = "anyone signed in"  # changes nothing another person sees
ADMIN = "admin"  # what no team owns

P = Permissions
MUTATIONS: dict[str, str] = {
    # Runs: the location of the job, or of the run re-executed, terminated or deleted.
    "launchPipelineExecution": P.LAUNCH_PIPELINE_EXECUTION,
    "launchRun": P.LAUNCH_PIPELINE_EXECUTION,
    "launchMultipleRuns": P.LAUNCH_PIPELINE_EXECUTION,
    "launchPipelineReexecution": P.LAUNCH_PIPELINE_REEXECUTION,
    "launchRunReexecution": P.LAUNCH_PIPELINE_REEXECUTION,
    "terminatePipelineExecution": P.TERMINATE_PIPELINE_EXECUTION,
    "terminateRun": P.TERMINATE_PIPELINE_EXECUTION,
    "terminateRuns": P.TERMINATE_PIPELINE_EXECUTION,
    "deletePipelineRun": P.DELETE_PIPELINE_RUN,
    "deleteRun": P.DELETE_PIPELINE_RUN,
    # Schedules and sensors: their location.
    "startSchedule": P.START_SCHEDULE,
    "stopRunningSchedule": P.STOP_RUNNING_SCHEDULE,
    "resetSchedule": P.START_SCHEDULE,
    "scheduleDryRun": P.SCHEDULE_DRY_RUN,
    "startSensor": P.EDIT_SENSOR,
    "stopSensor": P.EDIT_SENSOR,
    "resetSensor": P.EDIT_SENSOR,
    "setSensorCursor": P.UPDATE_SENSOR_CURSOR,
    "sensorDryRun": P.SENSOR_DRY_RUN,
    # Code locations.
    "reloadRepositoryLocation": P.RELOAD_REPOSITORY_LOCATION,
    "shutdownRepositoryLocation": P.RELOAD_REPOSITORY_LOCATION,
    "reloadWorkspace": ADMIN,  # every location, and workspace.yaml's list of them
    # Assets: the location of each asset.
    "wipeAssets": P.WIPE_ASSETS,
    "reportRunlessAssetEvents": P.REPORT_RUNLESS_ASSET_EVENTS,
    "reportAssetCheckEvaluations": P.REPORT_RUNLESS_ASSET_EVENTS,
    # Backfills: the location of the partition set or of the assets.
    "launchPartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "resumePartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "reexecutePartitionBackfill": P.LAUNCH_PARTITION_BACKFILL,
    "cancelPartitionBackfill": P.CANCEL_PARTITION_BACKFILL,
    "addDynamicPartition": P.EDIT_DYNAMIC_PARTITIONS,
    "deleteDynamicPartitions": P.EDIT_DYNAMIC_PARTITIONS,
    # Components edited in the UI (Dagster+ only; refused in open source anyway).
    "setAppManagedComponent": P.EDIT_APP_MANAGED_COMPONENTS,
    "deleteAppManagedComponent": P.EDIT_APP_MANAGED_COMPONENTS,
    "refreshComponentState": P.REFRESH_COMPONENT_STATE,
    # Instance-wide: pools are shared by every team, auto-materialize runs for all.
    "setAutoMaterializePaused": ADMIN,
    "setConcurrencyLimit": ADMIN,
    "deleteConcurrencyLimit": ADMIN,
    # Frees a run's pool slots: the run's location (Dagster checks it as a termination).
    "freeConcurrencySlotsForRun": P.EDIT_CONCURRENCY_LIMIT,
    "freeConcurrencySlots": P.EDIT_CONCURRENCY_LIMIT,
    # The browser's own state: telemetry (off in dagster.yaml) and the first-visit dialog.
    "logTelemetry": ANYONE,
    "setNuxSeen": ANYONE,
}


@dataclass(frozen=True)
class Refusal:
    mutation: str
    needs: str  # a Dagster permission, ADMIN, or "a classification"
    message: str


def root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> Iterator[str]:
    """The root fields of an operation, through inline fragments and named ones."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if definition.kind == "fragment_definition"
    }
    pending, seen = [selection_set], set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection.name.value
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    seen.add(name)
                    pending.append(fragments[name].selection_set)


def mutations_in(document: DocumentNode) -> list[str]:
    """Every mutation any operation of the document asks for, whichever one the request names:
    a request may name an operation that does not run, never one that does run unchecked."""
    return [
        field_name
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        and definition.operation == OperationType.MUTATION
        for field_name in root_fields(document, definition.selection_set)
    ]


def has_anywhere(person: Person, permission: str) -> bool:
    """Whether the person holds the permission for some location (or everywhere)."""
    if person.is_admin:
        return True
    return bool(person.teams) and permission in LOCATION_SCOPED_PERMISSIONS


def refusal(person: Person, mutations: Iterable[str]) -> Refusal | None:
    """Why the person may not ask for these mutations at all; None if Dagster is to decide,
    location by location."""
    for mutation in mutations:
        needs = MUTATIONS.get(mutation)
        if needs == ANYONE or person.is_admin:
            continue
        if needs is None:
            return Refusal(
                mutation,
                "a classification",
                f"{mutation} is not classified for the platform's roles "
                "(dagster_team_celery/ui_access/mutations.py), so only an admin may use it",
            )
        if needs == ADMIN:
            return Refusal(mutation, ADMIN, f"{mutation} needs the admin role; {person.describe()}")
        if not has_anywhere(person, needs):
            return Refusal(
                mutation,
                str(needs),
                f"{mutation} needs the {needs} permission of a team's code location, given to "
                f"the team's members; {person.describe()} is a member of no team",
            )
    return None
