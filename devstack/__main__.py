"""`python -m devstack`: run the platform as local processes until Ctrl-C."""

import argparse
import signal
import sys
import threading
from pathlib import Path

from devstack.stack import LocalStack, StackError, StackSettings


def redeploy_main(argv: list[str]) -> int:
    from devstack.redeploy import redeploy

    parser = argparse.ArgumentParser(prog="python -m devstack redeploy")
    parser.add_argument("team")
    parser.add_argument("--name", default="dev", help="the running stack's state folder")
    args = parser.parse_args(argv)
    try:
        report = redeploy(StackSettings().state_root / args.name, args.team)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Redeployed {report.team} in {report.seconds:.1f}s: {report.old_pids} -> {report.new_pids}"
    )
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--name", default="dev", help="state folder under .devstack/")
    parser.add_argument("--webserver-port", type=int, default=3000)
    parser.add_argument("--flower-port", type=int, default=5555)
    parser.add_argument("--postgres-url", help="use this Postgres instead of starting one")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--fresh", action="store_true", help="wipe the state folder first")
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument("--timeout", type=float, default=180.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["redeploy"]:
        return redeploy_main(argv[1:])
    args = parse_args(argv)
    stack = LocalStack(
        StackSettings(
            name=args.name,
            webserver_port=args.webserver_port,
            flower_port=args.flower_port,
            postgres_url=args.postgres_url,
            redis_url=args.redis_url,
            fresh=args.fresh,
            flower=not args.no_flower,
        )
    )
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    print(f"Starting the local stack ({', '.join(stack.teams)}); logs in {stack.logs}")
    try:
        stack.start(timeout=args.timeout)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"All services healthy in {stack.startup_seconds:.1f}s.")
    print(f"  Dagster UI  {stack.webserver_url}")
    if not args.no_flower:
        user, password = stack.flower_credentials
        print(f"  Flower      {stack.flower_url}  ({user} / {password})")
    print(f"  Status      {Path(stack.state, 'status.json')}")
    print("Ctrl-C stops everything.")
    stop_requested.wait()
    print("Stopping...")
    stack.stop()
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
