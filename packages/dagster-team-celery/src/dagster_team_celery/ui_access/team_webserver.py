"""`dagster-platform-webserver`: Dagster's webserver, with the platform's roles.

It takes `dagster-webserver`'s command line and runs it; the one difference is the app: a
DagsterWebserver whose request context carries the caller's per-location permissions
(request_context.py), whose GraphQL endpoint refuses, before running it, a mutation the caller
may not ask for anywhere (mutations.py), answers 403 when Dagster refused one of the caller's
mutations for a location, and records every mutation in the audit log (audit.py).

Settings (docker-compose.yml sets them for the webserver):
- DAGSTER_UI_ACCESS_FILE: the people, teams and roles (people.py; keys/ui-access.yaml).
- DAGSTER_UI_ROLES=off: no roles, everyone an admin, as in plain Dagster. Only for a webserver
  nobody else can reach: local mode's, on loopback, for one person.

Private APIs of dagster-webserver 1.13.27 (pinned in the platform's pyproject.toml, tested by
tests/test_ui_access.py): DagsterWebserver's _make_request_context, graphql_execution_thread,
execute_graphql_subscription and build_graphql_middleware, and the CLI module's
create_app_from_workspace_process_context, which main() replaces.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from dagster_team_celery.ui_access.audit import AuditLog, postgres_from_environment
from dagster_team_celery.ui_access.mutations import ADMIN, Refusal, mutations_in, refusal
from dagster_team_celery.ui_access.people import AccessFile, AccessFileError, Person
from dagster_team_celery.ui_access.request_context import (
    Check,
    RecordMutationChecks,
    TeamRequestContext,
)

try:
    from dagster_webserver.webserver import DagsterWebserver
except ImportError:  # a team's image: it runs no webserver
    DagsterWebserver = object  # type: ignore[misc,assignment]

ACCESS_FILE_ENV = "DAGSTER_UI_ACCESS_FILE"
ROLES_ENV = "DAGSTER_UI_ROLES"
NOBODY = Person("(not signed in)")
# What may change something outside GraphQL without being an admin: Dagster's asset-report
# endpoints, which check the asset's location themselves (dagster_webserver/external_assets.py).
REPORT_PATHS = (
    "/report_asset_materialization/",
    "/report_asset_check/",
    "/report_asset_observation/",
)
READING = ("GET", "HEAD", "OPTIONS")


def forbidden(message: str, needs: str, existing: dict | None = None) -> JSONResponse:
    error = {"message": message, "extensions": {"code": "FORBIDDEN", "permission": needs}}
    body = existing or {"data": None}
    return JSONResponse({**body, "errors": [*body.get("errors", []), error]}, status_code=403)


class TeamWebserver(DagsterWebserver):
    def __init__(self, process_context, path_prefix: str = "", live_data_poll_rate=None, *,
                 access: AccessFile | None, audit: AuditLog) -> None:  # fmt: skip
        self.access = access
        self.audit = audit
        super().__init__(process_context, path_prefix, live_data_poll_rate)

    def person(self, conn: HTTPConnection | Headers) -> Person:
        headers = conn if isinstance(conn, Headers) else conn.headers
        assert self.access is not None
        return self.access.person(headers) or NOBODY

    def build_graphql_middleware(self) -> list:
        return [RecordMutationChecks()]

    def build_middleware(self) -> list[Middleware]:
        return [*super().build_middleware(), Middleware(AdminOnlyChanges, webserver=self)]

    def build_routes(self):
        return [Route("/ui-audit", self.audit_endpoint), *super().build_routes()]

    def _make_request_context(self, conn: HTTPConnection):
        if self.access is None:
            return super()._make_request_context(conn)
        context = TeamRequestContext(self._process_context, self.person(conn), conn)
        conn.state.team_context = context
        return context

    def graphql_execution_thread(self, request: Request, query: str, variables, operation_name):
        run = super().graphql_execution_thread
        if self.access is None:
            return run(request, query, variables, operation_name)
        try:
            mutations = mutations_in(parse(query))
        except GraphQLError:
            mutations = []  # Dagster answers the syntax error itself
        if not mutations:
            return run(request, query, variables, operation_name)
        person = self.person(request)
        refused = refusal(person, mutations)
        if refused:
            self.record(person, mutations, [], refused)
            return forbidden(refused.message, refused.needs)
        response = run(request, query, variables, operation_name)
        return self.judged(request, person, mutations, response)

    def judged(self, request: Request, person: Person, mutations: list[str], response):
        """Dagster's answer, as a 403 naming the permission if it refused one of the mutations
        for a location."""
        context: TeamRequestContext | None = getattr(request.state, "team_context", None)
        checks = context.refused if context else []
        locations = context.locations if context else []
        if not checks:
            self.record(person, mutations, locations, None)
            return response
        check = checks[0]
        message = refusal_message(mutations, check, person)
        refused = Refusal(mutations[0], check.permission, message)
        self.record(person, mutations, locations, refused)
        return forbidden(message, check.permission, json.loads(response.body))

    def record(self, person: Person, mutations: list[str], locations: list[str],
               refused: Refusal | None) -> None:  # fmt: skip
        entry: dict[str, Any] = {
            "user": person.user,
            "role": person.role,
            "teams": sorted(person.teams),
            "mutations": mutations,
            "locations": locations,
            "outcome": "refused" if refused else "allowed",
        }
        if refused:
            entry |= {"permission": refused.needs, "reason": refused.message}
        self.audit.record(entry)

    async def execute_graphql_subscription(self, websocket, operation_id, query, variables,
                                           operation_name):  # fmt: skip
        # The websocket is for subscriptions; a mutation sent on it would skip the checks above.
        if self.access is not None and not only_subscriptions(query):
            return None, {"message": "only subscriptions are taken on the websocket"}
        return await super().execute_graphql_subscription(
            websocket, operation_id, query, variables, operation_name
        )

    async def audit_endpoint(self, request: Request):
        if self.access is not None and not self.person(request).is_admin:
            return PlainTextResponse("The audit log is for admins.", status_code=403)
        limit = min(int(request.query_params.get("limit", "100")), 10_000)
        return JSONResponse(await run_in_threadpool(self.audit.recent, limit))


def refusal_message(mutations: list[str], check: Check, person: Person) -> str:
    asked = ", ".join(mutations)
    if check.reason:
        return f"{asked} refused: {check.reason}; {person.describe()}"
    if check.location:
        return (
            f"{asked} needs the {check.permission} permission for code location "
            f"{check.location}, given to the members of team {check.location}; "
            f"{person.describe()}"
        )
    return (
        f"{asked} needs the {check.permission} permission for the whole instance, given to "
        f"admins; {person.describe()}"
    )


def only_subscriptions(query: str) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return True  # Dagster answers the syntax error itself
    return all(
        definition.operation == OperationType.SUBSCRIPTION
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    )


class AdminOnlyChanges:
    """Outside GraphQL, only admins change anything, except through Dagster's asset reports,
    which check the asset's location themselves (and are audited here): deny by default for
    endpoints a Dagster upgrade adds."""

    def __init__(self, app, webserver: TeamWebserver) -> None:
        self.app = app
        self.webserver = webserver

    async def __call__(self, scope, receive, send) -> None:
        webserver = self.webserver
        if (
            scope["type"] != "http"
            or webserver.access is None
            or scope["method"] in READING
            or scope["path"].rstrip("/").endswith("/graphql")
        ):
            await self.app(scope, receive, send)
            return
        person = webserver.person(Headers(scope=scope))
        change = [f"{scope['method']} {scope['path']}"]
        if not scope["path"].startswith(REPORT_PATHS) and not person.is_admin:
            why = f"{scope['path']} takes changes from admins only"
            await run_in_threadpool(webserver.record, person, change, [], Refusal("", ADMIN, why))
            await PlainTextResponse(f"{why}.", 403)(scope, receive, send)
            return
        answered: dict[str, int] = {}

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_note)
        refused = answered.get("status", 500) in (401, 403)
        outcome = (
            Refusal("", "report_runless_asset_events", "refused by Dagster") if refused else None
        )
        await run_in_threadpool(webserver.record, person, change, [], outcome)


def access_from_environment(environ=os.environ) -> AccessFile | None:
    if environ.get(ROLES_ENV, "enforce") == "off":
        return None
    path = environ.get(ACCESS_FILE_ENV)
    if not path:
        raise AccessFileError(
            f"{ACCESS_FILE_ENV} is not set: point it at the access file (keys/ui-access.yaml, "
            f"written by `make env` and `make user`), or set {ROLES_ENV}=off for a webserver "
            "only you can reach"
        )
    return AccessFile(Path(path))


def main() -> None:
    import dagster_webserver.cli

    try:
        access = access_from_environment()
    except AccessFileError as error:
        sys.exit(f"dagster-platform-webserver: {error}")
    audit = AuditLog(postgres_from_environment() if access else None)

    def create_app(process_context, path_prefix: str = "", live_data_poll_rate=None, **kwargs):
        webserver = TeamWebserver(
            process_context, path_prefix, live_data_poll_rate, access=access, audit=audit
        )
        return webserver.create_asgi_app(**kwargs)

    dagster_webserver.cli.create_app_from_workspace_process_context = create_app
    dagster_webserver.cli.main()
