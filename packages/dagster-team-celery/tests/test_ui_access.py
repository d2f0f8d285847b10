"""The UI's roles without a stack: the access file, the classification of every mutation of the
installed Dagster, the refusals made before Dagster runs a mutation, and the private APIs of
dagster-webserver that team_webserver.py builds on. The roles against a real webserver, its
code servers and runs: tests/test_ui_roles.py; through the login proxy: test_container_e2e.py."""

import inspect
from pathlib import Path

import pytest
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster._core.workspace.permissions import Permissions
from dagster_graphql.schema import create_schema
from graphql import parse

from dagster_team_celery.ui_access import team_webserver
from dagster_team_celery.ui_access.mutations import ADMIN, ANYONE, MUTATIONS, mutations_in, refusal
from dagster_team_celery.ui_access.people import AccessFile, AccessFileError, AccessList, Person

ACCESS = """
users:
  tools: {role: admin}
  alice: {role: member, teams: [bakery]}
  bob: {role: member, teams: [ml]}
  vera: {role: viewer}
groups:
  platform-admins: {role: admin}
  ml-engineers: {role: member, teams: [ml]}
"""

ALICE = Person("alice", "member", frozenset({"bakery"}))
VERA = Person("vera")
TOOLS = Person("tools", "admin")


@pytest.fixture
def access(tmp_path: Path) -> AccessFile:
    path = tmp_path / "ui-access.yaml"
    path.write_text(ACCESS)
    return AccessFile(path)


def test_every_mutation_of_the_installed_dagster_is_classified() -> None:
    """A Dagster upgrade that adds a mutation fails here until someone decides who may use it;
    until then it is refused to everyone but admins (the next test)."""
    schema = create_schema().graphql_schema
    mutations = set(schema.mutation_type.fields)
    assert mutations - set(MUTATIONS) == set(), "classify these in ui_access/mutations.py"
    assert set(MUTATIONS) - mutations == set(), "these are no longer in Dagster's schema"
    permissions = {str(permission) for permission in Permissions}
    for mutation, needs in MUTATIONS.items():
        assert needs in (ANYONE, ADMIN) or str(needs) in permissions, mutation


def test_a_mutation_nobody_classified_is_refused_to_all_but_admins() -> None:
    unknown = ["launchEverythingEverywhere"]
    refused = refusal(ALICE, unknown)
    assert refused and refused.needs == "a classification"
    assert "only an admin may use it" in refused.message
    assert refusal(TOOLS, unknown) is None


def test_refusals_before_dagster_runs_anything() -> None:
    assert refusal(VERA, ["launchRun"]).needs == Permissions.LAUNCH_PIPELINE_EXECUTION
    assert "member of no team" in refusal(VERA, ["terminateRun"]).message
    # A member may try: Dagster then checks the run's or the job's location.
    assert refusal(ALICE, ["launchRun", "terminateRun", "wipeAssets"]) is None
    # What no team owns is an admin's.
    for mutation in ("reloadWorkspace", "setConcurrencyLimit", "setAutoMaterializePaused"):
        assert refusal(ALICE, [mutation]).needs == ADMIN
        assert refusal(TOOLS, [mutation]) is None
    # Pools are shared: freeing slots is an instance-wide permission in Dagster.
    assert refusal(ALICE, ["freeConcurrencySlotsForRun"]) is not None
    assert refusal(VERA, ["setNuxSeen", "logTelemetry"]) is None


def test_every_mutation_in_a_document_counts_whichever_operation_it_names() -> None:
    document = parse(
        """
        query Harmless { version }
        mutation Hidden {
          ...Deeper
          ... on Mutation { alias: terminateRun(runId: "x") { __typename } }
        }
        fragment Deeper on Mutation { ...Deepest }
        fragment Deepest on Mutation { wipeAssets(assetPartitionRanges: []) { __typename } }
        """
    )
    assert sorted(mutations_in(document)) == ["terminateRun", "wipeAssets"]
    assert mutations_in(parse("subscription { __typename }")) == []


def test_an_access_file_adds_a_users_groups_up(access: AccessFile) -> None:
    headers = {"X-Platform-User": "alice", "X-Platform-Groups": "ml-engineers, other"}
    assert access.person(headers) == Person("alice", "member", frozenset({"bakery", "ml"}))
    headers = {"X-Platform-User": "carol", "X-Platform-Groups": "platform-admins"}
    assert access.person(headers).is_admin
    # Signed in, but named nowhere: a viewer. Not signed in: nobody.
    assert access.person({"X-Platform-User": "mallory"}) == Person("mallory")
    assert access.person({}) is None


def test_the_access_file_is_read_again_when_it_changes_and_a_broken_edit_keeps_the_last(
    access: AccessFile,
) -> None:
    access.path.write_text(ACCESS.replace("vera: {role: viewer}", "vera: {role: admin}"))
    assert access.person({"X-Platform-User": "vera"}).is_admin
    access.path.write_text("users: [this is: not, a mapping")
    assert access.person({"X-Platform-User": "vera"}).is_admin


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("users:\n  alice: {role: owner}", "role 'owner' is not one of viewer, member, admin"),
        ("users:\n  alice: {role: member}", "a member needs teams"),
        ("users:\n  alice: {role: admin, teams: [ml]}", "only a member has teams"),
        ("users:\n  alice: {role: member, teams: ['ml; drop']}", "teams must be a list"),
        ("users:\n  'a b': {role: viewer}", "is not a valid name"),
        ("people: {}", "expected only the keys users and groups"),
    ],
)
def test_a_bad_access_file_is_refused_with_the_fix(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "ui-access.yaml"
    path.write_text(text)
    with pytest.raises(AccessFileError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        AccessList.load(path)


def test_the_webserver_refuses_to_start_without_an_access_file(monkeypatch) -> None:
    monkeypatch.delenv(team_webserver.ACCESS_FILE_ENV, raising=False)
    monkeypatch.delenv(team_webserver.ROLES_ENV, raising=False)
    with pytest.raises(AccessFileError, match="DAGSTER_UI_ACCESS_FILE is not set"):
        team_webserver.access_from_environment()
    monkeypatch.setenv(team_webserver.ROLES_ENV, "off")
    assert team_webserver.access_from_environment() is None


def test_the_private_dagster_webserver_apis_team_webserver_overrides_are_there() -> None:
    """dagster-webserver==1.13.27 (pyproject.toml); a release that renames one fails here."""
    import dagster_webserver.cli
    from dagster_webserver.webserver import DagsterWebserver

    assert callable(dagster_webserver.cli.create_app_from_workspace_process_context)
    for name in (
        "_make_request_context",
        "graphql_execution_thread",
        "execute_graphql_subscription",
        "build_graphql_middleware",
        "build_middleware",
        "build_routes",
    ):
        assert name in vars(DagsterWebserver) or any(
            name in vars(base) for base in DagsterWebserver.__mro__
        ), name
    execution = inspect.signature(DagsterWebserver.graphql_execution_thread)
    assert list(execution.parameters) == [
        "self", "request", "query", "variables", "operation_name",
    ]  # fmt: skip
    context = inspect.signature(WorkspaceRequestContext.__init__)
    assert {"read_only", "read_only_locations", "source"} <= set(context.parameters)


class FakeLocation:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_repositories(self) -> dict[str, object]:
        return {"__repository__": object()}


class FakeContext:
    """What the partitions guard reads: the workspace's locations and the caller's rights."""

    def __init__(self, member_of: set[str]) -> None:
        self.code_locations = [FakeLocation("bakery"), FakeLocation("ml")]
        self.member_of = member_of
        self.refusals: list[tuple] = []

    def has_permission_for_location(self, permission: str, location: str) -> bool:
        return location in self.member_of

    def record_refusal(self, *refusal) -> None:
        self.refusals.append(refusal)


def test_dynamic_partitions_are_changed_only_by_members_of_every_team_using_the_name(
    monkeypatch,
) -> None:
    """Dagster checks the selector's location and then changes the instance's partitions of that
    name, which another team's assets may use too (ui_access/guards.py). Which repositories use
    a name is Dagster's own function, stood in for here; the stack has no dynamic partitions."""
    from types import SimpleNamespace

    from dagster_graphql.implementation.execution import dynamic_partitions

    from dagster_team_celery.ui_access import guards

    users = {("ml", "model_versions"), ("bakery", "model_versions"), ("bakery", "recipes")}
    monkeypatch.setattr(
        dynamic_partitions,
        "_repository_contains_dynamic_partitions_def",
        lambda info, selector, name: (selector.location_name, name) in users,
    )
    for name, member_of, refused in (
        ("recipes", {"bakery"}, False),
        ("model_versions", {"bakery"}, True),
        ("model_versions", {"bakery", "ml"}, False),
    ):
        context = FakeContext(member_of)
        info = SimpleNamespace(context=context, field_name="addDynamicPartition")
        answer = guards.guard_mutation(info, {"partitions_def_name": name})
        assert (answer is not None) is refused, (name, member_of)
        if refused:
            assert context.refusals[0][1] == "ml" and "also ml's" in context.refusals[0][2]


def test_the_private_dagster_graphql_apis_the_guards_use_are_there() -> None:
    """dagster-graphql==1.13.27 (pyproject.toml); guards.py reads these."""
    from dagster._core.remote_representation.handle import CompoundID
    from dagster_graphql.implementation.execution import dynamic_partitions
    from dagster_graphql.schema.instigation import GrapheneDryRunInstigationTick

    uses = inspect.signature(dynamic_partitions._repository_contains_dynamic_partitions_def)
    assert list(uses.parameters) == ["graphene_info", "repository_selector", "partitions_def_name"]
    parsed = CompoundID.from_string("origin::selector")
    assert (parsed.remote_origin_id, parsed.selector_id) == ("origin", "selector")
    assert "self._selector =" in inspect.getsource(GrapheneDryRunInstigationTick.__init__)
