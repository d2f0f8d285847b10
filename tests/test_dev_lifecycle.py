"""`make dev` never leaves a stack behind: a closed terminal, a dead `tee`, a crashed
supervisor, or a second `make dev` on the same state folder.

Before the fix, closing the terminal left about 21 processes running (the supervisor did not
handle SIGHUP and its services ran in their own sessions), and `make dev | tee` died on the
broken pipe before stopping anything.
"""

import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from devstack.environment import StackSettings
from devstack.stack_lock import read_status
from tests.repo import REPO_ROOT
from tests.stack_helpers import STACK_START_SECONDS

pytestmark = pytest.mark.local_stack

HEALTHY = "All services healthy"
# A hang guard: a stack stops in seconds, longer while other suites share the two cores.
STOP_SECONDS = 60
STATE_ROOT = StackSettings().state_root


def dev_args(name: str) -> str:
    # One team and no Flower: these tests are about processes, not about what they serve.
    return (
        f"ARGS=--name {name} --fresh --webserver-port 0 --flower-port 0 --no-flower --teams bakery"
        f" --timeout {STACK_START_SECONDS}"
    )


def stack_processes(name: str) -> list[psutil.Process]:
    """Every process of the stack: the supervisor, each service and all their descendants."""
    status = read_status(STATE_ROOT / name)
    assert status, f"no status.json for stack {name}"
    leaders = [status["supervisor_pid"], *(p["pid"] for p in status["processes"].values())]
    found = []
    for pid in leaders:
        try:
            process = psutil.Process(pid)
            found.extend([process, *process.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    return found


def service_starts(name: str) -> int:
    """How many times the stack's services were started: each start heads its log."""
    logs = (STATE_ROOT / name / "logs").glob("*.log")
    return sum(log.read_text(errors="replace").count("==== starting ") for log in logs)


def survivors(processes: list[psutil.Process], timeout: float) -> list[str]:
    """What still runs `timeout` seconds on (a hang guard: stopping takes seconds, longer on
    busy cores)."""
    deadline = time.monotonic() + timeout
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [process for process in alive if not gone_or_zombie(process)]
        time.sleep(0.2)
    described = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                described.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except (psutil.NoSuchProcess, FileNotFoundError):
            pass
    return described


def wait_for_text(read, text: str, timeout: float = STACK_START_SECONDS + 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{seen[-3000:]}"
        seen += read()
    return seen


def cleanup(name: str) -> None:
    subprocess.run(["make", "dev-stop", f"ARGS=--name {name}"], cwd=REPO_ROOT, check=False)
    shutil.rmtree(STATE_ROOT / name, ignore_errors=True)
    (STATE_ROOT / f"{name}.lock").unlink(missing_ok=True)


@pytest.fixture
def stack_name(request):
    name = f"lifecycle-{request.node.name[5:30]}-{os.getpid()}"
    yield name
    cleanup(name)


def test_closing_the_terminal_stops_every_process(stack_name):
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a shell on the pseudo-terminal running `make dev`, as a window
        os.chdir(REPO_ROOT)
        # A terminal window's shell starts with default signal dispositions. The test runner
        # may not (started under nohup, or as a background job, it ignores SIGHUP and SIGINT),
        # and a shell that inherits an ignored SIGHUP can never pass the hangup on.
        for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        # The trailing command keeps bash as the session leader instead of exec-ing make.
        os.execvp("bash", ["bash", "-c", f"make dev '{dev_args(stack_name)}'; echo ended"])

    def read() -> str:
        ready, _, _ = select.select([terminal], [], [], 1.0)
        try:
            return os.read(terminal, 65536).decode(errors="replace") if ready else ""
        except OSError:
            return ""

    try:
        wait_for_text(read, HEALTHY)
        processes = stack_processes(stack_name)
        closed = time.monotonic()
        os.close(terminal)  # the window closes: the kernel sends SIGHUP
        left = survivors(processes, timeout=STOP_SECONDS)
        print(
            f"\nterminal closed: {len(processes)} processes, all gone in "
            f"{time.monotonic() - closed:.1f}s"
            if not left
            else f"\nleft: {left}"
        )
        assert not left, f"still running {STOP_SECONDS}s after the terminal closed: {left}"
    finally:
        with_timeout_reap(pid)


def gone_or_zombie(process: psutil.Process) -> bool:
    # psutil.wait_procs raised FileNotFoundError for a process that exited as it was asked.
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, FileNotFoundError):
        return True


def with_timeout_reap(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def test_ctrl_c_through_tee_stops_every_process_and_a_second_dev_is_refused(stack_name, tmp_path):
    log = tmp_path / "dev.log"
    shell = subprocess.Popen(
        ["bash", "-c", f"make dev '{dev_args(stack_name)}' | tee {log}"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_for_text(
            lambda: (time.sleep(0.5), log.read_text())[1] if log.exists() else "", HEALTHY
        )
        status = read_status(STATE_ROOT / stack_name)
        starts = service_starts(stack_name)

        started = time.monotonic()
        second = subprocess.run(
            ["make", "dev", dev_args(stack_name).replace(" --fresh", "")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        refused_after = time.monotonic() - started
        print(f"\nsecond `make dev` refused after {refused_after:.1f}s")
        assert second.returncode != 0
        assert "already running" in second.stderr, second.stderr[-2000:]
        assert status["webserver"] in second.stderr
        assert "make dev-stop" in second.stderr
        assert service_starts(stack_name) == starts, "the refusal must come before anything starts"
        assert read_status(STATE_ROOT / stack_name) == status, "the running stack was touched"

        processes = stack_processes(stack_name)
        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C reaches make, the supervisor and tee
        left = survivors(processes, timeout=STOP_SECONDS)
        assert not left, f"still running {STOP_SECONDS}s after Ctrl-C through tee: {left}"
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait(30)


def start_dev_in_background(stack_name: str, log_path: Path) -> subprocess.Popen:
    """`make dev` with no terminal at all, as after `nohup` or a closed SSH session."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["make", "dev", dev_args(stack_name)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_text(lambda: (time.sleep(0.5), log_path.read_text())[1], HEALTHY)
    return process


def test_dev_stop_stops_a_stack_whose_terminal_is_gone_and_a_crashed_one(stack_name, tmp_path):
    supervisor = start_dev_in_background(stack_name, tmp_path / "first.log")
    processes = stack_processes(stack_name)
    stopped = subprocess.run(
        ["make", "dev-stop", f"ARGS=--name {stack_name}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Stopped the local stack" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not survivors(processes, timeout=STOP_SECONDS)
    supervisor.wait(30)

    # A supervisor killed outright (SIGKILL: no handler runs) takes its services with it.
    crashed = start_dev_in_background(stack_name, tmp_path / "second.log")
    processes = stack_processes(stack_name)
    os.kill(read_status(STATE_ROOT / stack_name)["supervisor_pid"], signal.SIGKILL)
    left = survivors(processes, timeout=STOP_SECONDS)
    assert not left, f"a crashed supervisor left these running: {left}"
    crashed.wait(30)


def test_a_stale_postgres_lock_file_is_removed_and_a_live_one_is_explained(tmp_path):
    from devstack.errors import StackError
    from devstack.infra import check_postgres_lock_file

    data_dir = tmp_path / "postgres"
    data_dir.mkdir()
    lock_file = data_dir / "postmaster.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_file.write_text(f"{dead.pid}\n{data_dir}\n")
    check_postgres_lock_file(data_dir)
    assert not lock_file.exists(), "a lock file whose process is gone must be removed"

    # A live process named postgres (PR_SET_NAME) holds the file.
    impostor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ctypes, time; ctypes.CDLL(None).prctl(15, b'postgres', 0, 0, 0); "
            "time.sleep(30)",
        ]
    )
    time.sleep(1)
    try:
        lock_file.write_text(f"{impostor.pid}\n")
        with pytest.raises(StackError, match="make dev-stop"):
            check_postgres_lock_file(data_dir)
        assert lock_file.exists()
    finally:
        impostor.kill()


def test_the_stack_secrets_file_is_owner_only_even_when_it_was_not(tmp_path):
    from devstack.environment import StackEnvironment, StackSettings

    environment = StackEnvironment(StackSettings(name="private", state_root=tmp_path, teams=["x"]))
    environment.state.mkdir(parents=True)
    leaked = environment.state / "secrets.json"
    leaked.write_text('{"postgres_password": "kept"}')
    leaked.chmod(0o644)  # as an earlier write_text under umask 022 left it

    environment.prepare_state()

    assert stat.S_IMODE(leaked.stat().st_mode) == 0o600
    assert environment.secrets["postgres_password"] == "kept"


def test_flowers_redis_password_is_its_own_and_an_older_secrets_file_gets_one(tmp_path):
    import json

    from dagster_team_celery.deploy import redis_acl
    from devstack.environment import StackEnvironment, StackSettings

    settings = StackSettings(name="flower", state_root=tmp_path, teams=["bakery"])
    environment = StackEnvironment(settings)
    environment.state.mkdir(parents=True)
    # A secrets file written before Flower's Redis user had a password of its own.
    older = {"postgres_password": "p0", "redis_password": "r0", "flower_password": "f0"}
    (environment.state / "secrets.json").write_text(json.dumps(older))

    environment.prepare_state()
    environment.ports = {"redis": 6390}

    redis_password = environment.secrets["flower_redis_password"]
    assert redis_password not in older.values()
    assert environment.flower_credentials == ("admin", "f0")
    assert environment.flower_redis_url() == f"redis://flower:{redis_password}@127.0.0.1:6390/0"
    assert redis_acl.flower_rule(redis_password) in environment.redis_acl().splitlines()
    # Kept in the file, so the next start gives Flower the same Redis password.
    assert (
        json.loads((environment.state / "secrets.json").read_text())["flower_redis_password"]
        == redis_password
    )
    again = StackEnvironment(settings)
    again.prepare_state()
    assert again.secrets["flower_redis_password"] == redis_password


def test_the_postgres_password_file_is_owner_only_while_initdb_reads_it(tmp_path, monkeypatch):
    from devstack import infra
    from devstack.environment import StackEnvironment, StackSettings

    environment = StackEnvironment(StackSettings(name="pw", state_root=tmp_path, teams=["x"]))
    environment.state.mkdir(parents=True)
    environment.prepare_state()
    seen: list[int] = []

    def initdb(argv, **_kwargs):
        password_file = next(str(a)[9:] for a in argv if str(a).startswith("--pwfile="))
        seen.append(stat.S_IMODE(os.stat(password_file).st_mode))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(infra.subprocess, "run", initdb)
    infra.init_postgres(environment, tmp_path / "pgdata", run_as=[])
    assert seen == [0o600]
    assert not (environment.state / "pgpass.tmp").exists()
