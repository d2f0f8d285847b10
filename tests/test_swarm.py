"""The platform on a two-node Docker Swarm (tests/swarm_cluster.py), deployed the way a user
deploys it (`python -m scripts.swarm up`, what `make swarm-up` runs), with the placement below:

    swarm-node-1: mlplatform.core (state, UI, daemon), the bakery's runs, the ML team's steps
    swarm-node-2: the bakery's steps, the ML team's runs

so each team's run and its steps are on different nodes, and the ML team's steps read the
bakery's artifact on the node that did not write it. The last test kills node 2's engine: the
bakery's step and the ML team's run worker are lost with it, and both runs still succeed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack.graphql_client import PlatformClient
from registry.swarm_stack import generate
from scripts import ui_login
from tests.repo import HOST_SECRETS, REPO_ROOT, SHARED_SECRETS, env_settings
from tests.stack_helpers import run_browser_suite, wait_for_loaded_locations
from tests.swarm_cluster import HOST_SUBNET, OWNER_FILE, SwarmCluster, reap_stale_clusters
from tests.terminate import SLEEPING, sleep_config, wait_for_event

pytestmark = [pytest.mark.swarm]

STACK = "mlplatform"
RUN_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\) in warm run worker (\S+)\.")
RESUMED_PROCESS = re.compile(r"Resumed process for run \(pid: \d+\) in warm run worker (\S+) ")
FETCHED = re.compile(
    r"Fetched (\d+) bytes \((\d+) files\) of (\S+) into this host's artifact cache"
)
PLACEMENT = {
    1: ("mlplatform.core", "mlplatform.bakery.runs", "mlplatform.ml.steps"),
    2: ("mlplatform.bakery.steps", "mlplatform.ml.runs"),
}
# Where each team's run and steps go, by node.
RUN_NODE = {"bakery": "swarm-node-1", "ml": "swarm-node-2"}
STEP_NODE = {"bakery": "swarm-node-2", "ml": "swarm-node-1"}


class SwarmStack:
    def __init__(self, cluster: SwarmCluster, folder: Path) -> None:
        self.cluster = cluster
        self.env_file = folder / "swarm.env"
        self.state_dir = folder / "state"
        settings = {
            **{name: secrets.token_hex(16) for name in (*SHARED_SECRETS, *HOST_SECRETS)},
            "PLATFORM_NAME": STACK,
            # Flower is published on Swarm only when .env opts in, as compose needs to leave
            # loopback; the browser suite checks it through its own login.
            "FLOWER_BIND": "0.0.0.0",
            "KEYS_DIR": str(folder / "keys"),
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.ui_login = (ui_login.DEFAULT_USER, settings["UI_PASSWORD"])
        self.flower_password = settings["FLOWER_PASSWORD"]
        self.url = f"http://{cluster.ui_address}:3000"
        self.flower_url = f"http://{cluster.ui_address}:5555"
        self.deploy_seconds = 0.0

    def settings(self) -> dict[str, str]:
        return env_settings(self.env_file)

    def script(self, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *arguments],
            cwd=REPO_ROOT,
            env={**os.environ, "DOCKER_HOST": self.cluster.manager.socket},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def swarm(self, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return self.script(
            "-m",
            "scripts.swarm",
            "--env-file",
            str(self.env_file),
            "--state-dir",
            str(self.state_dir),
            *arguments,
            timeout=timeout,
        )

    def images(self) -> list[str]:
        stack = generate(self.settings(), STACK)
        return sorted({service["image"] for service in stack.document["services"].values()})

    def tasks(self) -> dict[str, set[str]]:
        """Service -> the nodes its running tasks are on."""
        manager = self.cluster.manager
        placed: dict[str, set[str]] = {}
        for service in manager.docker("stack", "services", STACK, "--format", "{{.Name}}").split():
            listing = manager.docker(
                "service",
                "ps",
                service,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}}",
            )
            placed[service.removeprefix(f"{STACK}_")] = set(listing.split())
        return placed

    def logs(self) -> str:
        manager = self.cluster.manager
        out = []
        for service in manager.docker(
            "stack", "services", STACK, "--format", "{{.Name}}", check=False
        ).split():
            tail = manager.docker(
                "service", "logs", "--tail", "25", service, check=False, timeout=60
            )
            out.append(f"--- {service}\n{tail}")
        return "\n".join(out)


def ensure_images_built(images: list[str]) -> None:
    """The container suite builds them; alone, this builds them as `make build` does."""
    if all(subprocess.run(["podman", "image", "exists", i]).returncode == 0 for i in images):
        return
    import registry

    for service in registry.build_order(REPO_ROOT):
        subprocess.run(["docker", "compose", "build", service], cwd=REPO_ROOT, check=True)


@pytest.fixture(scope="module")
def swarm_stack(tmp_path_factory, request):
    started = time.monotonic()
    cluster = SwarmCluster()
    stack = SwarmStack(cluster, tmp_path_factory.mktemp("swarm"))
    made = stack.script("-m", "scripts.make_env", "--env-file", str(stack.env_file))
    assert made.returncode == 0, made.stdout + made.stderr
    deployed_ok = False
    try:
        cluster.start()
        for index, labels in PLACEMENT.items():
            cluster.label(cluster.nodes[index - 1], *labels)
        print(f"\ntwo-node swarm formed in {time.monotonic() - started:.1f}s")
        images = stack.images()
        ensure_images_built(images)
        print(f"{len(images)} images loaded into both nodes in {cluster.load_images(images):.1f}s")
        deploy_started = time.monotonic()
        # 900 s: when the other lanes of `make test` load both cores, the first deploy has taken
        # longer than 600 s (init restarted twice, ci21), and a retry deploys everything again.
        deployed = stack.swarm("up", "--timeout", "900")
        stack.deploy_seconds = time.monotonic() - deploy_started
        print(deployed.stdout[-3000:])
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        print(f"deploy to every service healthy on two nodes: {stack.deploy_seconds:.1f}s")
        deployed_ok = True
        yield stack
    finally:
        if not deployed_ok or request.session.testsfailed:
            print(stack.swarm("ps").stdout)
            print(stack.logs()[-20000:])
            for node in cluster.nodes:
                print(f"--- {node.hostname} engine log\n{node.log.read_text()[-3000:]}")
        cluster.stop()


@pytest.fixture(scope="module")
def swarm_client(swarm_stack) -> PlatformClient:
    client = PlatformClient(swarm_stack.url, login=swarm_stack.ui_login)
    wait_for_loaded_locations(client, ["bakery", "ml"], timeout=180)
    return client


def test_a_cluster_whose_test_process_died_is_removed_before_a_new_one_takes_its_addresses():
    """The landing CI's UI was unreachable for 180 s: a killed earlier run's host link still
    carried the UI's address. Its process gone, such a cluster is removed; nothing else is."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    left = SwarmCluster(tag=gone)
    (left.folder / OWNER_FILE).write_text(gone)
    try:
        left.create_network()
        assert f"{HOST_SUBNET}.1/30" in _addresses(left.host_link[0])
        mine = SwarmCluster()
        try:
            assert reap_stale_clusters(keep=mine.folder) == [left.folder.name]
        finally:
            shutil.rmtree(mine.folder)
        assert not left.folder.exists()
        assert left.nodes[0].namespace not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True).stdout  # fmt: skip
        assert _addresses(left.host_link[0]) == ""
    finally:
        left.stop()


def _addresses(link: str) -> str:
    shown = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", link], capture_output=True, text=True
    )
    return shown.stdout


def test_the_stack_deploys_on_two_nodes_with_each_service_where_its_label_puts_it(swarm_stack):
    shown = swarm_stack.swarm("ps")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    placed = swarm_stack.tasks()
    for service in ("postgres", "redis", "object-store", "webserver", "daemon", "ui", "flower"):
        assert placed[service] == {"swarm-node-1"}, (service, placed[service])
    for team in ("bakery", "ml"):
        assert placed[f"{team}-code"] == placed[f"{team}-runs"] == {RUN_NODE[team]}
        assert placed[f"{team}-steps"] == {STEP_NODE[team]}
    # No secret is in any service's definition, nor in the stack file left on disk.
    secret_values = {
        value
        for key, value in swarm_stack.settings().items()
        if re.search(r"PASSWORD|SECRET|SIGNING_KEY|_KEY_ID", key) and len(value) >= 16
    }
    manager = swarm_stack.cluster.manager
    services = manager.docker("stack", "services", STACK, "--format", "{{.Name}}").split()
    definitions = manager.docker("service", "inspect", *services)
    stack_file = (swarm_stack.state_dir / "docker-stack.yml").read_text()
    assert secret_values and not [v for v in secret_values if v in definitions or v in stack_file]
    # Runs start in warm run workers: no service holds the engine's socket, on any node.
    assert "docker.sock" not in definitions
    assert not (swarm_stack.state_dir / "secrets").exists()


def test_swarm_up_refuses_a_worker_engine_and_a_label_no_node_carries(swarm_stack):
    cluster = swarm_stack.cluster
    on_worker = subprocess.run(
        [sys.executable, "-m", "scripts.swarm", "--env-file", str(swarm_stack.env_file), "up"],
        cwd=REPO_ROOT,
        env={**os.environ, "DOCKER_HOST": cluster.nodes[1].socket},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert on_worker.returncode == 1
    assert "not a Swarm manager" in on_worker.stderr and "docker swarm init" in on_worker.stderr
    cluster.label(cluster.nodes[0], "mlplatform.ml.steps", remove=True)
    try:
        refused = swarm_stack.swarm("up", timeout=120)
    finally:
        cluster.label(cluster.nodes[0], "mlplatform.ml.steps")
    assert refused.returncode == 1
    assert "no node carries mlplatform.ml.steps=true" in refused.stderr
    assert "docker node update --label-add mlplatform.ml.steps=true" in refused.stderr
    # Swarm itself stopped the ML steps' task when its node lost the label; it comes back on
    # the same node once the label does.
    deadline = time.monotonic() + 180
    while (shown := swarm_stack.swarm("ps")).returncode != 0:
        assert time.monotonic() < deadline, shown.stdout
        time.sleep(2)
    assert swarm_stack.tasks()["ml-steps"] == {STEP_NODE["ml"]}


def test_each_teams_run_is_on_one_node_and_its_steps_on_the_other(swarm_stack, swarm_client):
    submitted = {
        team: (swarm_client.submit_job(team, "probe_ping"), time.monotonic())
        for team in ("bakery", "ml")
    }
    for team, (run_id, started) in submitted.items():
        status = swarm_client.wait_for_run(run_id, timeout=300)
        seconds = time.monotonic() - started
        assert status == "SUCCESS", f"{team}: {status}"
        run_worker = wait_for_event(swarm_client, run_id, RUN_PROCESS).group(2)
        step_workers = set(swarm_client.step_workers(run_id).values())
        print(f"\n{team}: probe_ping in {seconds:.1f}s; run in {run_worker}, steps {step_workers}")
        assert run_worker.endswith(f".{RUN_NODE[team]}"), run_worker
        assert step_workers and all(w.endswith(f".{STEP_NODE[team]}") for w in step_workers)


def fetches(client: PlatformClient, run_id: str) -> list[tuple[int, int, str]]:
    found = []
    for event in client.run_events(run_id):
        match = FETCHED.search(event.get("message") or "")
        if match:
            found.append((int(match[1]), int(match[2]), match[3]))
    return found


def test_ml_reads_the_bakerys_artifact_on_the_other_node_fetching_it_once(swarm_client):
    bakery_run = swarm_client.submit_job("bakery", "cake_production_job")
    assert swarm_client.wait_for_run(bakery_run, timeout=600) == "SUCCESS"
    assert fetches(swarm_client, bakery_run) == []
    reads = []
    for attempt in range(2):
        started = time.monotonic()
        forecast = swarm_client.submit_job("ml", "forecast_job")
        assert swarm_client.wait_for_run(forecast, timeout=600) == "SUCCESS"
        assert swarm_client.output_metadata(forecast)["cake_demand_forecast"]["cakes_read"] == 6
        workers = set(swarm_client.step_workers(forecast).values())
        assert all(w.endswith(".swarm-node-1") for w in workers), workers
        reads.append(fetches(swarm_client, forecast))
        seconds = time.monotonic() - started
        print(f"\nforecast {attempt + 1} on swarm-node-1 in {seconds:.1f}s: {reads[-1]}")
    # Written on node 2; node 1 fetched it from the object store on the first read only.
    (first,) = reads[0]
    assert first[0] > 0 and first[2].startswith("baked_cakes"), first
    assert reads[1] == [], "the second read on the same node fetched again"
    print(f"cross-node artifact read: {first[0]} bytes in {first[1]} files, fetched once")


def test_the_browser_suite_passes_through_the_login_proxy(swarm_stack, swarm_client):
    run_browser_suite(
        "the swarm",
        swarm_stack.url,
        swarm_stack.ui_login[1],
        swarm_stack.flower_url,
        swarm_stack.flower_password,
    )
    # Without the login, the proxy lets nothing through.
    assert requests.get(f"{swarm_stack.url}/server_info", timeout=30).status_code == 401


def running_tasks(swarm_stack) -> dict[str, set[str]]:
    manager = swarm_stack.cluster.manager
    names = manager.docker("stack", "services", STACK, "--format", "{{.Name}}").split()
    return {
        name: set(
            manager.docker("service", "ps", name, "-q", "--filter", "desired-state=running").split()
        )
        for name in names
    }


def test_a_rotated_password_replaces_only_its_services_tasks_and_its_old_secret(swarm_stack):
    before = running_tasks(swarm_stack)
    old_password, new_password = swarm_stack.flower_password, secrets.token_hex(16)
    text = swarm_stack.env_file.read_text()
    swarm_stack.env_file.write_text(
        text.replace(f"FLOWER_PASSWORD={old_password}", f"FLOWER_PASSWORD={new_password}")
    )
    started = time.monotonic()
    redeployed = swarm_stack.swarm("up", "--timeout", "300")
    print(f"\nredeployed with a rotated Flower password in {time.monotonic() - started:.1f}s")
    assert redeployed.returncode == 0, redeployed.stdout[-3000:] + redeployed.stderr[-2000:]
    swarm_stack.flower_password = new_password
    assert "removed secret mlplatform-flower_basic_auth-" in redeployed.stdout
    after = running_tasks(swarm_stack)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {f"{STACK}_flower"}, changed
    login = ("admin", new_password)
    assert requests.get(swarm_stack.flower_url, auth=login, timeout=30).status_code == 200
    stale = requests.get(swarm_stack.flower_url, auth=("admin", old_password), timeout=30)
    assert stale.status_code == 401


def test_losing_node_2_mid_run_resumes_its_run_worker_and_its_steps_on_node_1(
    swarm_stack, swarm_client
):
    """Node 2 holds the bakery's step workers and the ML team's run worker. With both teams'
    runs in flight, its engine dies: the bakery's step is run again on node 1, and the ML run
    is resumed by a run worker Swarm starts on node 1, following its step there to the end."""
    cluster = swarm_stack.cluster
    bakery = swarm_client.submit_job("bakery", "probe_sleep", run_config=sleep_config(45))
    ml = swarm_client.submit_job("ml", "probe_sleep", run_config=sleep_config(45))
    assert wait_for_event(swarm_client, bakery, SLEEPING).group(2).endswith("swarm-node-2")
    ml_run_worker = wait_for_event(swarm_client, ml, RUN_PROCESS).group(2)
    assert ml_run_worker.endswith("swarm-node-2"), ml_run_worker
    wait_for_event(swarm_client, ml, SLEEPING)
    # Somewhere for Swarm to put the bakery's step workers and the ML run worker once node 2 is
    # gone.
    cluster.label(cluster.nodes[0], "mlplatform.bakery.steps")
    cluster.label(cluster.nodes[0], "mlplatform.ml.runs")
    killed_at = time.monotonic()
    killed = cluster.kill_engine(cluster.nodes[1])
    while cluster.node_states()["swarm-node-2"] != "down":
        assert time.monotonic() - killed_at < 120, "Swarm never marked node 2 down"
        time.sleep(1)
    marked_down = time.monotonic() - killed_at
    statuses = {run: swarm_client.wait_for_run(run, timeout=420) for run in (bakery, ml)}
    seconds = time.monotonic() - killed_at
    resumed = wait_for_event(swarm_client, ml, RESUMED_PROCESS, timeout=5).group(1)
    print(
        f"\nnode 2's engine killed ({killed} processes): marked down after {marked_down:.0f}s; "
        f"both runs ended {statuses} {seconds:.0f}s after the kill; ML resumed in {resumed}"
    )
    assert statuses == {bakery: "SUCCESS", ml: "SUCCESS"}, statuses
    assert resumed.endswith("swarm-node-1"), resumed
