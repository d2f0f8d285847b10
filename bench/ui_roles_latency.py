"""What the UI's roles cost a GraphQL request: the same requests, alternated, to a webserver
with the roles (a second one beside the platform's local stack, devstack/roles_webserver.py)
and to the stack's own, which runs the same program without them (local mode's; in compose
it is the one behind the login proxy). Both are reached directly, on loopback, so the figures
are the webserver's own time; the login proxy in front adds the same to both."""

import time
from pathlib import Path

import requests

from bench.run_timings import percentile
from dagster_team_celery.ui_access.people import USER_HEADER
from devstack.local_stack import LocalStack
from devstack.roles_webserver import roles_webserver

REQUESTS = 200
RUNS_PAGE = "query { runsOrError(limit: 20) { ... on Runs { results { runId status jobName } } } }"
# name: (query, who asks); a viewer's launch is refused before it runs, with the roles only.
CASES = {
    "query { version }": ("query { version }", "alice"),
    "runs list, 20 runs": (RUNS_PAGE, "alice"),
    "mutation allowed and audited (setNuxSeen)": ("mutation { setNuxSeen }", "alice"),
    "launch refused before it runs (a viewer)": (
        'mutation { launchRun(executionParams: {selector: {repositoryLocationName: "bakery",'
        ' repositoryName: "__repository__", jobName: "probe_ping"}}) { __typename } }',
        "vera",
    ),
}
ROLES_ONLY = {"launch refused before it runs (a viewer)"}


def percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p95_ms": round(percentile(samples, 0.95) * 1000, 2),
    }


def timed(session: requests.Session, url: str, query: str, user: str) -> float:
    started = time.perf_counter()
    response = session.post(
        f"{url}/graphql", json={"query": query}, headers={USER_HEADER: user}, timeout=60
    )
    elapsed = time.perf_counter() - started
    assert response.status_code in (200, 403), response.text[:500]
    return elapsed


def request_latency(stack: LocalStack, folder: Path, count: int = REQUESTS) -> dict:
    results: dict[str, dict] = {}
    with roles_webserver(stack, folder) as roles_url, requests.Session() as session:
        urls = {"roles": roles_url, "plain": stack.webserver_url}
        for case, (query, user) in CASES.items():
            kinds = ["roles"] if case in ROLES_ONLY else ["roles", "plain"]
            samples: dict[str, list[float]] = {kind: [] for kind in kinds}
            for kind in kinds:  # one unrecorded request each: connections, caches
                timed(session, urls[kind], query, user)
            for _ in range(count):
                for kind in kinds:
                    samples[kind].append(timed(session, urls[kind], query, user))
            results[case] = {kind: percentiles(values) for kind, values in samples.items()}
    return {"requests": count, "cases": results}
