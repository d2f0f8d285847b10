"""`make test`: every suite, with progress, and a table of what each one cost.

The steps run in five lanes at once, as most of their time is spent waiting on the processes,
servers and engines they start: the static checks, then the packages' and the teams' tests; the
platform's suites on the shared local stack; those that start their own stacks or none; the
images, then the compose suite; the fault suite (its own local stack), then the swarm once the
images are built. Each pytest loads ``cost_recorder`` (this folder), which writes every test's
seconds to one log; from it this module writes test-results/ci-costs.json and .md: per suite (a
test file), its tests, seconds and what it starts, and per step its wall-clock and CPU time.
With CI_STARTED_AT (epoch seconds, set by .ci/run) the total includes the machine's setup.

    python -m tests.ci.suites [--fast] [--only STEP ...] [--one-lane]
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import registry
from tests.ci.cost_recorder import RETRY_ENV
from tests.ci.costs import BUDGET_SECONDS, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "test-results"
PYTHON = sys.executable
PLUGIN = ["-p", "cost_recorder"]
# How much of a failed step's report the console shows (the whole log stays in its file).
FAILURE_LINES = 1500
PLATFORM_ARGS = ["-v", "-rP", "--durations=15", *PLUGIN]
PYTEST_TESTS_FAILED = 1  # pytest's exit code when tests ran and some failed


@dataclass
class Step:
    name: str
    commands: list[list[str]]
    lane: int  # steps of one lane run one after another; lanes run at once
    needs: str | None = None  # a step of another lane this one waits for, and needs passed
    after: str | None = None  # a step of another lane this one starts after, passed or not
    cwd: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # CPU time of the step's processes and of those they waited for (containers' not included):
    # on two shared cores this, more than waiting, sets how long the lanes take together.
    cpu_seconds: float = 0.0
    returncode: int | None = None

    @property
    def log(self) -> Path:
        return RESULTS / "logs" / f"{self.name}.log"


def team_steps(fast: bool) -> list[Step]:
    steps = []
    for team in (team.name for team in registry.teams(REPO_ROOT) if team.built_here):
        folder = REPO_ROOT / "code_locations" / team
        commands = [[str(folder / ".venv/bin/python"), "-m", "pytest", "tests", "-q", *PLUGIN]]
        if not fast:
            # The dg commands a team runs in its own folder (README, "Teams").
            dg = str(folder / ".venv/bin/dg")
            commands += [[dg, "check", "defs"], [dg, "list", "defs"]]
        venv = {"VIRTUAL_ENV": str(folder / ".venv")}
        steps.append(Step(f"team-{team}", commands, lane=3 if fast else 1, cwd=folder, env=venv))
    return steps


# The platform's suites, split where they share nothing: the fault suite's own local stack; the
# session's shared local stack (tests/conftest.py marks the tests on it); the tests that start
# their own stacks or none; compose; the swarm, which loads the images the images step built.
LOCAL_SUITES = "not (container or swarm or faults)"
# What `make test-fast` leaves out: everything that starts a stack, a worker, a server or an
# engine (pyproject.toml's markers).
SLOW = "local_stack or container or faults or ui or swarm or integration"
PACKAGES = ["packages/dagster-team-celery/tests", "packages/dagster-wandb-io/tests"]
STATIC = [
    [PYTHON, "-m", "registry", "generate", "--check"],
    [PYTHON, "-m", "ruff", "check", "--quiet", "."],
    [PYTHON, "-m", "ruff", "format", "--check", "--quiet", "."],
]


def platform(name: str, markers: str, lane: int, **order: str) -> Step:
    command = [PYTHON, "-m", "pytest", "tests", "-m", markers, *PLATFORM_ARGS]
    return Step(f"platform-{name}", [command], lane=lane, **order)


def all_steps(workers: int) -> list[Step]:
    # Most package tests wait on the workers and servers they start (a quarter of a core each,
    # measured): several at once fill the cores.
    spread = ["-n", str(workers)] if workers > 1 else []
    # Five lanes: measured, the suites use about one of the two cores on average, the rest of
    # their time waiting on what they started; the longest lane (compose) sets the total.
    return [
        Step("static", STATIC, lane=1),
        Step("packages", [[PYTHON, "-m", "pytest", *PACKAGES, "-q", *spread, *PLUGIN]], lane=1),
        *team_steps(fast=False),
        platform("shared-stack", f"shared_stack and {LOCAL_SUITES}", lane=2),
        platform("own-stacks", f"not shared_stack and {LOCAL_SUITES}", lane=3),
        Step("images", [[PYTHON, "-m", "tests.ci.images"]], lane=4),
        platform("compose", "container and not swarm", lane=4),
        # Not at once with the other stacks' starts: five lanes starting theirs together on two
        # cores took the shared stack past three minutes.
        platform("faults", "faults", lane=5, after="images"),
        # After the faults rather than the own stacks: measured, the own-stacks lane then swarm
        # was the longest (1340 s + 334 s), the faults lane ended 400 s before the others.
        platform("swarm", "swarm", lane=5, needs="images"),
    ]


def fast_steps() -> list[Step]:
    pytest = [PYTHON, "-m", "pytest", "-q", "-m", f"not ({SLOW})", *PLUGIN]
    return [
        Step("static", STATIC, lane=1),
        Step("packages", [[*pytest, *PACKAGES]], lane=1),
        Step("platform", [[*pytest, "tests"]], lane=2),
        *team_steps(fast=True),
    ]


def in_order(steps: list[Step]) -> list[Step]:
    """The steps in their listed order, except that each comes after the step it waits for (in
    one lane, a step waiting for a later one would wait forever)."""
    ordered: list[Step] = []
    pending = list(steps)
    while pending:
        waiting = {step.name for step in pending}
        ready = next(step for step in pending if not {step.needs, step.after} & waiting)
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def is_pytest(command: list[str]) -> bool:
    return command[1:3] == ["-m", "pytest"]


def last_summary(log: Path) -> str:
    """pytest's last summary line ("3 passed, 1 failed in 12.3s"), if the log has one."""
    matches = re.findall(
        r"^=* ?(\d+ (?:passed|failed|error).*?) ?=*$", log.read_text(errors="replace"), re.M
    )
    return matches[-1] if matches else ""


class Runner:
    def __init__(self, steps: list[Step], log: Path) -> None:
        self.steps = steps
        self.log = log
        self.began = time.monotonic()
        self.say_lock = threading.Lock()
        self.finished = {step.name: threading.Event() for step in steps}

    def say(self, message: str) -> None:
        with self.say_lock:
            print(f"[make test +{time.monotonic() - self.began:.0f}s] {message}", flush=True)

    def run_step(self, step: Step, number: int) -> None:
        self.say(f"suite {number}/{len(self.steps)}: {step.name} starts")
        started = time.monotonic()
        env = {
            **os.environ,
            **step.env,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
            ),
            "CI_COSTS_LOG": str(self.log),
            "CI_COSTS_STEP": step.name,
        }
        step.returncode = 0
        with step.log.open("w") as log:
            for command in step.commands:
                if is_pytest(command):
                    # Its own last-failed cache: the lanes' pytests would overwrite one another's.
                    command = [*command, "-o", f"cache_dir={RESULTS / 'cache' / step.name}"]
                returncode = self.run_command(step, command, env, log)
                if returncode == PYTEST_TESTS_FAILED and is_pytest(command):
                    returncode = self.retry_failed(step, number, command, env, log)
                if returncode != 0:
                    step.returncode = returncode
                    break
        step.seconds = time.monotonic() - started
        outcome = "passed" if step.returncode == 0 else f"FAILED (exit {step.returncode})"
        summary = last_summary(step.log)
        self.say(
            f"suite {number}/{len(self.steps)}: {step.name} {outcome} in {step.seconds:.0f}s"
            f" ({step.cpu_seconds:.0f} CPU s)"
            f"{f' ({summary})' if summary else ''}; log: {step.log.relative_to(REPO_ROOT)}"
        )
        if step.returncode:
            self.show_failure(step)

    def run_command(self, step: Step, command: list[str], env: dict, log) -> int:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(
            command, cwd=step.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        step.cpu_seconds += usage.ru_utime + usage.ru_stime
        return os.waitstatus_to_exitcode(status)

    def retry_failed(self, step: Step, number: int, command: list[str], env: dict, log) -> int:
        """Once, only the tests that failed (pytest's --last-failed). On two shared cores a
        test that waits on real servers and engines can miss its hang guard under load; one
        that fails again is a failure, one that passes is named in the report as flaky."""
        self.say(f"suite {number}/{len(self.steps)}: {step.name}: retrying its failed tests once")
        retry = [*command, "--last-failed", "--last-failed-no-failures", "none"]
        return self.run_command(step, retry, {**env, RETRY_ENV: "1"}, log)

    def show_failure(self, step: Step) -> None:
        """The failing step's report: pytest's FAILURES and ERRORS and its short summary, not
        the passing tests' output (-rP, kept in the log), so a CI log that keeps only the console
        still says what broke."""
        lines = step.log.read_text(errors="replace").splitlines()
        shown, keep = [], False
        for line in lines:
            header = re.match(r"=+ (.+?) =+$", line)
            if header:
                title = header.group(1)
                keep = title in ("FAILURES", "ERRORS") or title == "short test summary info"
            if keep:
                shown.append(line)
        if not shown:  # not a pytest failure (a lint, a dg command): the log's end says why
            shown = lines[-200:]
        with self.say_lock:
            print(f"---- {step.name}: {step.log.relative_to(REPO_ROOT)} ----", flush=True)
            print("\n".join(shown[:FAILURE_LINES]), flush=True)
            print(f"---- end of {step.name} ----", flush=True)

    def run_lane(self, lane: list[Step]) -> None:
        # A failure does not stop the lane: one CI run reports every failing step.
        for step in lane:
            number = self.steps.index(step) + 1
            if step.after in self.finished:
                self.finished[step.after].wait()
            needed = next((s for s in self.steps if s.name == step.needs), None)
            if needed is not None:
                self.finished[needed.name].wait()
                if needed.returncode:
                    step.returncode = 1
                    self.say(
                        f"suite {number}/{len(self.steps)}: {step.name} not run: it needs "
                        f"{needed.name}, which failed"
                    )
                    self.finished[step.name].set()
                    continue
            self.run_step(step, number)
            self.finished[step.name].set()

    def run(self, one_lane: bool = False) -> bool:
        by_lane: dict[int, list[Step]] = {}
        for step in in_order(self.steps) if one_lane else self.steps:
            by_lane.setdefault(1 if one_lane else step.lane, []).append(step)
        threads = [
            threading.Thread(target=self.run_lane, args=(lane,)) for lane in by_lane.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return all(step.returncode == 0 for step in self.steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ci.suites", description=__doc__)
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    parser.add_argument(
        "--one-lane", action="store_true", help="every step in turn, as on a one-core machine"
    )
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist's for the packages")
    parser.add_argument("--fast", action="store_true", help="only what starts no stack")
    args = parser.parse_args(argv)
    every = fast_steps() if args.fast else all_steps(args.workers)
    steps = [step for step in every if not args.only or step.name in args.only]
    if not steps:
        parser.error(f"no step is named {args.only}: {[step.name for step in every]}")
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    stem = RESULTS / ("fast-costs" if args.fast else "ci-costs")
    log = Path(f"{stem}.jsonl")
    log.unlink(missing_ok=True)
    runner = Runner(steps, log)
    passed = runner.run(one_lane=args.one_lane)
    wall = time.monotonic() - runner.began
    started_at = float(os.environ.get("CI_STARTED_AT") or 0)
    setup = (time.time() - wall - started_at) if started_at else None
    step_rows = [
        {
            "name": s.name,
            "seconds": round(s.seconds, 1),
            "cpu_seconds": round(s.cpu_seconds, 1),
            "passed": s.returncode == 0,
        }
        for s in steps
    ]
    command = "make test-fast" if args.fast else "make test"
    report = write_report(command, log, step_rows, stem, wall, setup)
    print(report["markdown"], flush=True)
    total = report["json"]["total_seconds"]
    if total > BUDGET_SECONDS:
        print(
            f"WARNING: the suite took {total:.0f}s, over its budget of {BUDGET_SECONDS}s "
            "(30 minutes): see the slowest suites above.",
            flush=True,
        )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
