"""A Docker Swarm of two nodes on this machine, for the tests: two Docker engines (Debian's
docker.io), each in a network namespace of its own, joined by a veth pair.

- Each engine is started through `nsenter --net`, not `ip netns exec`, which remounts /sys and
  hides the cgroup mounts the engine needs; `unshare --uts` gives each node its own host name,
  so the event log tells the nodes apart.
- A second veth pair joins this (the root) namespace to node 1, so the tests and the browser
  reach the UI's published port there; no other traffic leaves the two namespaces.
- This kernel has no IPVS: the stack reaches every service by DNS round robin
  (registry/swarm_stack.py).
- There is no registry: the images are copied into each engine (`podman save | docker load`).
- `kill_engine` is a node lost at once: its engine, containerd, shims and containers, all killed.
- Every cluster uses the same addresses, so `start` first removes the clusters of test processes
  that died without their teardown (killed, timed out): their engines would still run and their
  host link would still route the UI's address, and this cluster's UI would be unreachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Outside 10.0.0.0/8, which the overlay networks' address pool takes.
LINK_SUBNET = "192.168.231"
HOST_SUBNET = "192.168.232"
OVERLAY_POOL = "10.231.0.0/16"
CLUSTERS_ROOT = Path("/var/tmp")
OWNER_FILE = "owner.pid"
CLUSTER_NAME = re.compile(r"mlp-swarm-(\d+)-")
HOST_LINK = re.compile(r"mlps(\d+)h")


def run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}")
    return result


@dataclass
class Node:
    index: int
    namespace: str
    hostname: str
    address: str
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return f"unix://{self.folder}/docker.sock"

    def docker(self, *arguments: str, check: bool = True, **kwargs) -> str:
        return run("docker", "-H", self.socket, *arguments, check=check, **kwargs).stdout

    @property
    def log(self) -> Path:
        return self.folder / "dockerd.log"


class SwarmCluster:
    def __init__(self, tag: str | None = None, folder: Path | None = None) -> None:
        """A new cluster owned by this process, or (`tag` and `folder` given) one left behind."""
        self.tag = tag or f"{os.getpid() % 100000}"
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix=f"mlp-swarm-{self.tag}-", dir=CLUSTERS_ROOT))
            (folder / OWNER_FILE).write_text(str(os.getpid()))
        self.folder = folder
        self.nodes = [
            Node(
                index,
                f"mlp-swarm-{self.tag}-{index}",
                f"swarm-node-{index}",
                f"{LINK_SUBNET}.{index}",
                self.folder / f"node{index}",
            )
            for index in (1, 2)
        ]
        # veth names are at most 15 characters.
        self.link = (f"mlps{self.tag}a", f"mlps{self.tag}b")
        self.host_link = (f"mlps{self.tag}h", f"mlps{self.tag}n")
        self.host_address = f"{HOST_SUBNET}.1"
        self.ui_address = f"{HOST_SUBNET}.2"  # node 1, from this namespace

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    # ---- network --------------------------------------------------------------------------

    def create_network(self) -> None:
        for node in self.nodes:
            run("ip", "netns", "add", node.namespace)
            run("ip", "-n", node.namespace, "link", "set", "lo", "up")
        first, second = self.nodes
        run("ip", "link", "add", self.link[0], "type", "veth", "peer", "name", self.link[1])
        for node, end in ((first, self.link[0]), (second, self.link[1])):
            run("ip", "link", "set", end, "netns", node.namespace)
            run("ip", "-n", node.namespace, "addr", "add", f"{node.address}/24", "dev", end)
            run("ip", "-n", node.namespace, "link", "set", end, "up")
        host_end, node_end = self.host_link
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end)
        run("ip", "link", "set", node_end, "netns", first.namespace)
        run("ip", "addr", "add", f"{self.host_address}/30", "dev", host_end)
        run("ip", "link", "set", host_end, "up")
        run("ip", "-n", first.namespace, "addr", "add", f"{self.ui_address}/30", "dev", node_end)
        run("ip", "-n", first.namespace, "link", "set", node_end, "up")

    # ---- engines --------------------------------------------------------------------------

    def start_engine(self, node: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        dockerd = [
            "dockerd",
            f"--data-root={node.folder}/data",
            f"--exec-root={node.folder}/exec",
            f"--pidfile={node.folder}/dockerd.pid",
            f"--host={node.socket}",
            # Only the stack's own overlay and bridge networks, never the root namespace's.
            "--bip=172.30.0.1/24",
        ]
        script = f'hostname {node.hostname} && exec nsenter --net=/run/netns/{node.namespace} "$@"'
        node.process = subprocess.Popen(
            ["unshare", "--uts", "sh", "-c", script, "sh", *dockerd],
            stdout=node.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while run("docker", "-H", node.socket, "version", check=False).returncode != 0:
            if node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{node.hostname}'s engine did not start:\n{node.log.read_text()[-3000:]}"
                )
            time.sleep(0.5)

    def form_swarm(self) -> None:
        manager, worker = self.nodes
        manager.docker(
            "swarm", "init",
            f"--advertise-addr={manager.address}",
            f"--listen-addr={manager.address}:2377",
            f"--default-addr-pool={OVERLAY_POOL}",
        )  # fmt: skip
        token = manager.docker("swarm", "join-token", "-q", "worker").strip()
        worker.docker(
            "swarm", "join", f"--token={token}",
            f"--advertise-addr={worker.address}",
            f"--listen-addr={worker.address}:2377",
            f"{manager.address}:2377",
        )  # fmt: skip

    def node_id(self, node: Node) -> str:
        return node.docker("info", "--format", "{{.Swarm.NodeID}}").strip()

    def label(self, node: Node, *labels: str, remove: bool = False) -> None:
        option = "--label-rm" if remove else "--label-add"
        arguments = [
            part for label in labels for part in (option, label if remove else f"{label}=true")
        ]
        self.manager.docker("node", "update", *arguments, self.node_id(node))

    def node_states(self) -> dict[str, str]:
        nodes = json.loads(
            self.manager.docker("node", "inspect", *self.manager.docker("node", "ls", "-q").split())
        )
        return {n["Description"]["Hostname"]: n["Status"]["State"] for n in nodes}

    def load_images(self, images: list[str]) -> float:
        """Copies the images from podman (where they were built) into both engines."""
        started = time.monotonic()
        archive = self.folder / "images.tar"
        run("podman", "save", "-m", "-o", str(archive), *images)
        failures: list[str] = []

        def load(node: Node) -> None:
            result = run("docker", "-H", node.socket, "load", "-q", "-i", str(archive), check=False)
            if result.returncode != 0:
                failures.append(f"{node.hostname}: {result.stderr}")

        threads = [threading.Thread(target=load, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        archive.unlink()
        if failures:
            raise RuntimeError("loading the images failed: " + "; ".join(failures))
        return time.monotonic() - started

    def start(self) -> None:
        reap_stale_clusters(keep=self.folder)
        self.create_network()
        for node in self.nodes:
            self.start_engine(node)
        self.form_swarm()

    # ---- losing a node --------------------------------------------------------------------

    def engine_processes(self, node: Node) -> list[int]:
        """The node's engine, its containerd, the shims and every process in its containers."""
        parents: dict[int, int] = {}
        commands: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                commands[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().decode(errors="replace")
                )
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        roots = {pid for pid, command in commands.items() if str(node.folder) in command}
        found = set(roots)
        changed = True
        while changed:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            found |= children
            changed = bool(children)
        return sorted(found)

    def kill_engine(self, node: Node) -> int:
        """SIGKILL at once to everything of the node's engine: no container stops cleanly."""
        processes = self.engine_processes(node)
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(processes)

    # ---- teardown -------------------------------------------------------------------------

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.process and node.process.poll() is None:
                node.docker("swarm", "leave", "--force", check=False, timeout=60)
                ids = node.docker("ps", "-aq", check=False).split()
                if ids:
                    node.docker("rm", "-f", *ids, check=False, timeout=120)
                node.process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=30)
            self.kill_engine(node)
        self.unmount_all()
        for node in self.nodes:
            run("ip", "netns", "delete", node.namespace, check=False)
        run("ip", "link", "delete", self.host_link[0], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def unmount_all(self) -> None:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.folder))), reverse=True):
            run("umount", "-l", mount, check=False)


# ---- clusters left behind -----------------------------------------------------------------


def _owner_alive(tag: str, folder: Path | None) -> int | None:
    """The live test process that owns a cluster, if any. Clusters made before the owner file
    existed name their owner only by the tag (its pid modulo 100000)."""
    owner_file = folder / OWNER_FILE if folder else None
    try:
        pid = int(owner_file.read_text()) if owner_file and owner_file.exists() else int(tag)
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    mine = pid == os.getpid()  # a cluster this process made earlier and did not stop
    return pid if not mine and (b"python" in command or b"pytest" in command) else None


def _leftover_tags() -> dict[str, Path | None]:
    tags: dict[str, Path | None] = {}
    namespaces = run("ip", "netns", "list", check=False).stdout
    links = run("ip", "-o", "link", "show", check=False).stdout
    for match in [*CLUSTER_NAME.finditer(namespaces), *HOST_LINK.finditer(links)]:
        tags.setdefault(match.group(1), None)
    for folder in CLUSTERS_ROOT.glob("mlp-swarm-*"):
        if match := CLUSTER_NAME.match(folder.name):
            tags[match.group(1)] = folder
    return tags


def reap_stale_clusters(keep: Path) -> list[str]:
    """Stops every cluster whose test process is gone; a live one is an error that names it,
    since two clusters cannot share the UI's address."""
    reaped: list[str] = []
    for tag, folder in _leftover_tags().items():
        if folder == keep:
            continue
        if owner := _owner_alive(tag, folder):
            raise RuntimeError(
                f"another swarm cluster (test process {owner}, {folder or 'mlp-swarm-' + tag})"
                f" is running and uses {HOST_SUBNET}.0/30 too: wait for it to end, or stop it"
                f" with `kill {owner}`; a cluster whose process is gone is removed here."
            )
        stale = SwarmCluster(tag, folder or CLUSTERS_ROOT / f"mlp-swarm-{tag}-gone")
        stale.stop()
        reaped.append(stale.folder.name)
    if reaped:
        print(f"removed swarm clusters left by test processes that are gone: {reaped}")
    return reaped
