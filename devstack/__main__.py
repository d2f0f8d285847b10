"""`python -m devstack`: run the platform as local processes until Ctrl-C."""

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from devstack.environment import StackSettings
from devstack.errors import StackError
from devstack.local_stack import LocalStack


def stop_main(argv: list[str]) -> int:
    from devstack.stack_lock import stop_stack

    parser = argparse.ArgumentParser(prog="python -m devstack stop")
    parser.add_argument("--name", default="dev", help="the stack's state folder")
    args = parser.parse_args(argv)
    say(stop_stack(StackSettings().state_root / args.name))
    return 0


def say(message: str, stream=None) -> None:
    """Print, unless the terminal or pipe is gone: a closed terminal (EIO) or a dead `tee`
    (EPIPE) must never cut the cleanup short."""
    with contextlib.suppress(OSError):
        print(message, file=stream or sys.stdout, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--name", default="dev", help="state folder under .devstack/")
    parser.add_argument("--webserver-port", type=int, default=3000)
    parser.add_argument("--flower-port", type=int, default=5555)
    parser.add_argument("--postgres-url", help="use this Postgres instead of starting one")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument(
        "--object-store-url",
        help="use this S3 endpoint instead of starting SeaweedFS (credentials from"
        " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    )
    parser.add_argument("--object-store-bucket", default="platform")
    parser.add_argument("--fresh", action="store_true", help="wipe the state folder first")
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument(
        "--teams", nargs="+", metavar="TEAM", help="run only these teams (default: all)"
    )
    parser.add_argument(
        "--run-launcher",
        choices=["warm", "process"],
        default="warm",
        help="warm: runs start in each team's warm run worker (the default); process: each run "
        "in a fresh subprocess of its team's code server",
    )
    parser.add_argument("--timeout", type=float, default=180.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stop"]:
        return stop_main(argv[1:])
    args = parse_args(argv)
    stack = LocalStack(
        StackSettings(
            name=args.name,
            webserver_port=args.webserver_port,
            flower_port=args.flower_port,
            postgres_url=args.postgres_url,
            redis_url=args.redis_url,
            object_store_url=args.object_store_url,
            object_store_bucket=args.object_store_bucket,
            fresh=args.fresh,
            flower=not args.no_flower,
            teams=args.teams,
            run_launcher=args.run_launcher,
        )
    )
    stack.progress = say
    stop_requested = threading.Event()

    def request_stop(*_) -> None:
        # Still starting: unwind start(), which stops what it began. Only once, so a second
        # signal cannot cut that cleanup short.
        unwind = not (stack.startup_seconds or stop_requested.is_set())
        stop_requested.set()
        if unwind:
            raise KeyboardInterrupt

    # A closed terminal sends SIGHUP; `make dev-stop` and `kill` send SIGTERM.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    say(f"Starting the local stack ({', '.join(stack.teams)}); logs in {stack.logs}")
    try:
        try:
            stack.start(timeout=args.timeout)
        except StackError as error:
            say(f"error: {error}", sys.stderr)
            return 1
        except KeyboardInterrupt:
            say("Interrupted while starting; stopping what was started.")
            return 130
        if stack.leftovers_killed:
            say(f"Stopped {stack.leftovers_killed} service(s) an earlier stack had left running.")
        say(f"All services healthy in {stack.startup_seconds:.1f}s.")
        say(f"  Dagster UI  {stack.webserver_url}")
        if not args.no_flower:
            user, password = stack.flower_credentials
            say(f"  Flower      {stack.flower_url}  ({user} / {password})")
        bucket = stack.settings.object_store_bucket
        say(f"  S3 store    {stack.object_store_url}  (bucket {bucket})")
        say(f"  Status      {Path(stack.state, 'status.json')}")
        say("Ctrl-C stops everything (or `make dev-stop` from another terminal).")
        stop_requested.wait()
        say("Stopping...")
    finally:
        # Whatever happened above (a signal during start-up included), nothing is left running.
        stack.stop()
    say("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
