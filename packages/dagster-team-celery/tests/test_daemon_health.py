"""The daemon's health check finds the daemon process it is asked about from /proc (the images
carry no psutil); its heartbeat query runs against a real stack in tests/test_daemon_health.py."""

import os

from dagster_team_celery.deploy import daemon_health


def fake_proc(root, processes: dict[int, tuple[list[str], int]], boot: int = 1_000) -> None:
    """A /proc with `btime` and, per pid, its argv and start time in clock ticks after boot."""
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(f"cpu  1 2 3\nbtime {boot}\nprocesses 9\n")
    for pid, (argv, ticks) in processes.items():
        folder = root / str(pid)
        folder.mkdir()
        (folder / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in argv) + b"\0")
        # The command name may hold spaces and parentheses: fields count after the last ")".
        fields = ["S"] + ["0"] * 18 + [str(ticks)] + ["0"] * 10
        (folder / "stat").write_text(f"{pid} (python (x) y) {' '.join(fields)}\n")


def test_the_oldest_dagster_daemon_run_is_the_one_asked_about(tmp_path):
    ticks = os.sysconf("SC_CLK_TCK")
    fake_proc(
        tmp_path / "proc",
        {
            7: (
                ["/venv/bin/python", "/venv/bin/dagster-daemon", "run", "-w", "w.yaml"],
                50 * ticks,
            ),
            8: (["/venv/bin/python", "/venv/bin/dagster-daemon", "run"], 20 * ticks),
            # A liveness check of the same command, and an unrelated process: not daemons.
            9: (["/venv/bin/python", "/venv/bin/dagster-daemon", "liveness-check"], 5 * ticks),
            10: (["/usr/bin/python3", "-c", "print('run')"], 1 * ticks),
        },
    )
    assert daemon_health.daemon_started_at(tmp_path / "proc") == 1_000 + 20


def test_no_daemon_process_is_no_start_time(tmp_path):
    fake_proc(tmp_path / "proc", {3: (["sleep", "60"], 100)})
    assert daemon_health.daemon_started_at(tmp_path / "proc") is None
