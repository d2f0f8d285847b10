"""Dagster's own permission model, per caller: a request context whose permissions are the
caller's role's, location by location.

Dagster's resolvers already ask the request context, for every mutation, whether its caller
holds the mutation's permission for each code location it touches (the job's, the run's, the
schedule's, each asset's: dagster_graphql.implementation.utils). Open-source Dagster answers
yes for everyone; Dagster+ answers from its roles. Here a viewer holds nothing, a member holds
the location-scoped permissions of its teams' locations (a location is named after its team),
and an admin holds everything. The context also records the answers its mutations got, for the
refusal's status and message and for the audit log.
"""

from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext

from dagster_team_celery.ui_access import guards
from dagster_team_celery.ui_access.people import Person


@dataclass(frozen=True)
class Check:
    permission: str
    location: str | None  # None: asked for the whole instance
    allowed: bool
    reason: str | None = None  # why a guard (guards.py) refused, where it is not the role


class TeamRequestContext(WorkspaceRequestContext):
    def __init__(self, process_context: WorkspaceProcessContext, person: Person, source) -> None:
        # WorkspaceProcessContext.create_request_context's arguments, with the caller's
        # permissions (a webserver started --read-only stays read-only for everyone).
        read_only = process_context.read_only
        super().__init__(
            instance=process_context.instance,
            current_workspace=process_context.get_current_workspace(),
            process_context=process_context,
            version=process_context.version,
            source=source,
            read_only=read_only or not person.is_admin,
            read_only_locations={} if read_only else {team: False for team in person.teams},
        )
        self.person = person
        self.checks: list[Check] = []
        # Only the checks a mutation's own resolver makes count, and only its outermost ones:
        # has_permission_for_selector asks has_permission first, then the location.
        self.recording = False
        self._depth = 0

    def _checked(self, method, permission: str, location: str | None, *args: Any) -> bool:
        self._depth += 1
        try:
            allowed = method(permission, *args)
        finally:
            self._depth -= 1
        if self.recording and self._depth == 0:
            self.checks.append(Check(str(permission), location, allowed))
        return allowed

    def has_permission(self, permission: str) -> bool:
        return self._checked(super().has_permission, permission, None)

    def has_permission_for_location(self, permission: str, location_name: str) -> bool:
        method = super().has_permission_for_location
        return self._checked(method, permission, location_name, location_name)

    def has_permission_for_selector(self, permission: str, selector: Any) -> bool:
        location = getattr(selector, "location_name", None)
        return self._checked(super().has_permission_for_selector, permission, location, selector)

    def record_refusal(self, permission: str, location: str | None, reason: str) -> None:
        self.checks.append(Check(str(permission), location, False, reason))

    @property
    def refused(self) -> list[Check]:
        return [check for check in self.checks if not check.allowed]

    @property
    def locations(self) -> list[str]:
        return sorted({check.location for check in self.checks if check.location})


# A schedule's or sensor's next tick, evaluated by its code server (guards.py).
DRY_RUN_RESULT = ("DryRunInstigationTick", "evaluationResult")


class RecordMutationChecks:
    """A graphene middleware: the context records permission checks only while a mutation's
    root resolver runs, not while the fields of its answer are resolved (those ask "may this
    person terminate this run?" to draw a button, and refuse nothing). It also applies the
    checks Dagster's own miss (guards.py) before the resolvers they guard."""

    def resolve(self, next_, root, info, **args):
        context = info.context
        if not isinstance(context, TeamRequestContext):
            return next_(root, info, **args)
        if info.parent_type is not info.schema.mutation_type:
            dry_run = (info.parent_type.name, info.field_name) == DRY_RUN_RESULT
            if dry_run and not context.person.is_admin:
                guards.guard_dry_run(root, info)
            return next_(root, info, **args)
        if not context.person.is_admin and (refused := guards.guard_mutation(info, args)):
            return refused
        context.recording = True
        try:
            result = next_(root, info, **args)
        finally:
            context.recording = False
        if isawaitable(result):
            return recorded_while_awaited(context, result)
        return result


async def recorded_while_awaited(context: TeamRequestContext, result):
    context.recording = True
    try:
        return await result
    finally:
        context.recording = False
