"""The stack the browser tests visit: the local one, or one already up elsewhere."""

from dataclasses import dataclass
from pathlib import Path

from devstack.graphql_client import PlatformClient
from devstack.local_stack import LocalStack


@dataclass(frozen=True)
class UiTarget:
    """The stack the browser visits."""

    webserver_url: str
    webserver_login: tuple[str, str] | None  # the UI proxy's login; None: no proxy (local)
    flower_url: str
    flower_credentials: tuple[str, str]
    teams: list[str]
    client: PlatformClient
    local_stack: LocalStack | None  # None for a stack started elsewhere
    screenshots: Path
