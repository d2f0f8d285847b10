"""``dagster-team-worker``: a team's step worker and run worker forked from one preloaded
parent, on a real Redis, as compose and the devstack run them."""

import signal
import subprocess
import sys
import textwrap

import psutil
import pytest
from celery_team import WORKER_READY_SECONDS, wait_for
from test_worker import worker_env

from dagster_team_celery.control import team_app
from dagster_team_celery.settings import run_queue
from dagster_team_celery.workers.liveness import role_liveness_path
from dagster_team_celery.workers.worker_cli import worker_argv

# Starts real Celery workers (make test-fast leaves it out).
pytestmark = pytest.mark.integration

FINE_TEAM = """
import dagster as dg

@dg.definitions
def defs():
    return dg.Definitions()
"""


@pytest.fixture
def family(tmp_path, redis_url):
    """The bakery's workers, both roles, started as compose starts them."""
    (tmp_path / "fine_team.py").write_text(FINE_TEAM)
    env = worker_env(tmp_path, redis_url, "fine_team")
    log = (tmp_path / "workers.log").open("ab")
    process = subprocess.Popen(worker_argv(), env=env, stdout=log, stderr=subprocess.STDOUT)
    alive = [role_liveness_path(role, tmp_path / "alive") for role in ("steps", "runs")]
    wait_for(
        lambda: all(path.exists() for path in alive),
        WORKER_READY_SECONDS,
        lambda: (tmp_path / "workers.log").read_text(errors="replace")[-4000:],
    )
    app = team_app("bakery", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
    yield process, app, tmp_path / "workers.log"
    app.close()
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        process.wait(60)


def answering_pids(app) -> dict[str, int]:
    """Each worker that answered within 3 s: Celery name (without the host) -> main pid."""
    stats = app.control.inspect(timeout=3).stats() or {}
    return {name.split("@")[0]: info["pid"] for name, info in stats.items()}


def worker_pids(app) -> dict[str, int]:
    """Both workers' pids, once both answer: a busy machine can make one miss a 3 s inspect
    although its liveness file is written, so a single broadcast proves nothing."""
    roles = {"bakery", run_queue("bakery")}
    return wait_for(
        lambda: (pids := answering_pids(app)).keys() >= roles and pids,
        WORKER_READY_SECONDS,
        lambda: f"workers answering: {sorted(answering_pids(app))}, expected {sorted(roles)}",
    )


def test_both_workers_are_forks_of_one_parent_and_share_its_imports(family):
    process, app, _log = family
    pids = worker_pids(app)
    assert set(pids) == {"bakery", run_queue("bakery")}
    parent = psutil.Process(process.pid)
    assert {child.pid for child in parent.children()} == set(pids.values())
    for pid in pids.values():
        memory = psutil.Process(pid).memory_full_info()
        # Dagster, Celery and the team's code are the parent's pages, shared copy-on-write:
        # a worker started on its own would hold all of them privately.
        assert memory.uss < 0.5 * memory.rss, (pid, memory)


def test_a_killed_worker_is_forked_again_and_its_sibling_keeps_running(family):
    process, app, log = family
    before = worker_pids(app)
    psutil.Process(before[run_queue("bakery")]).kill()

    def replaced() -> bool:
        now = answering_pids(app)
        return now.get(run_queue("bakery")) not in (None, before[run_queue("bakery")])

    wait_for(replaced, 90, lambda: log.read_text(errors="replace")[-4000:])
    assert worker_pids(app)["bakery"] == before["bakery"], "the step worker must be untouched"
    assert process.poll() is None
    assert "runs worker was killed by SIGKILL; forking a new one" in log.read_text()


def test_a_run_task_sent_to_the_step_queue_is_not_run_by_the_step_worker(family):
    """Both apps live in the parent; a step worker that also knew the run task would run a
    run in its long-lived pool, outside the run worker's fresh fork per run."""
    _process, app, log = family
    app.send_task("dagster_team_celery.execute_run", args=["no-such-run"], queue="bakery")
    wait_for(
        lambda: "unregistered task of type 'dagster_team_celery.execute_run'" in log.read_text(),
        30,
        lambda: log.read_text(errors="replace")[-4000:],
    )


def test_workers_whose_parent_is_killed_outright_shut_down(family):
    process, app, _log = family
    workers = [psutil.Process(pid) for pid in worker_pids(app).values()]
    process.kill()
    process.wait(10)
    _gone, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, f"orphaned workers still running: {alive}"


def test_a_worker_that_keeps_failing_at_start_stops_the_family(tmp_path):
    (tmp_path / "mini_app.py").write_text(
        "from celery import Celery\napp = Celery('mini', broker='memory://')\n"
    )
    (tmp_path / "family.py").write_text(
        textwrap.dedent(
            """
            import sys
            from dagster_team_celery.workers.worker_roles import WorkerRole
            from dagster_team_celery.workers.worker_family import WorkerFamily

            broken = WorkerRole(
                "steps", "mini_app", lambda team: ["--app", "mini_app", "worker", "--pool", "nope"]
            )
            sys.exit(WorkerFamily("bakery", [broken]).run())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(tmp_path / "family.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard: a family that gives up never reaches it
    )
    assert result.returncode == 1, result.stderr
    assert "3 times in a row" in result.stderr
