"""python -m registry: list the teams, regenerate the files that list them, add or remove one.

list [--built-here]     the team names, one per line (the Makefile reads this)
generate [--check]      render workspace.yaml and docker-compose.yml's team block;
                        --check fails, with a diff, when a file is stale (CI runs it)
new NAME [--no-sync]    scaffold code_locations/NAME from templates/team and regenerate
remove NAME             delete code_locations/NAME and regenerate
set-image NAME REF      point a team kept in its own repository at another image
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from registry import REPO_ROOT, RegistryError, build_order, find_team, teams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout to use")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list")
    listing.add_argument("--built-here", action="store_true", help="only teams built here")
    commands.add_parser("build-order", help="the services `make build` builds, in order")
    commands.add_parser("generate").add_argument("--check", action="store_true")
    new = commands.add_parser("new")
    new.add_argument("name")
    new.add_argument("--no-sync", action="store_true", help="lock, but create no venv")
    commands.add_parser("remove").add_argument("name")
    set_image = commands.add_parser("set-image")
    set_image.add_argument("name")
    set_image.add_argument("image")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    root = args.root
    if args.command == "list":
        for team in teams(root):
            if team.built_here or not args.built_here:
                print(team.name)
        return 0
    if args.command == "build-order":
        print("\n".join(build_order(root)))
        return 0
    # Everything below renders templates, which needs the platform venv (Jinja2, PyYAML).
    from registry import generate, scaffold

    if args.command == "generate":
        if args.check:
            differences = generate.stale(root)
            for diff in differences.values():
                print(diff)
            if differences:
                names = ", ".join(path.name for path in differences)
                print(
                    f"error: {names} out of date with code_locations/; run `make generate`.",
                    file=sys.stderr,
                )
                return 1
            return 0
        changed = generate.write(root)
        print("updated " + ", ".join(p.name for p in changed) if changed else "up to date")
        return 0
    if args.command == "new":
        started = time.monotonic()
        target = scaffold.new_team(args.name, root, sync=not args.no_sync)
        print(
            f"Created team {args.name!r} in {target.relative_to(root)} "
            f"({time.monotonic() - started:.1f}s); workspace.yaml and docker-compose.yml "
            f"({', '.join(find_team(args.name, root).services)}) regenerated.\n"
            f"Next: `make up` (or `make dev`), then launch `sample_job` in {args.name}."
        )
        return 0
    if args.command == "remove":
        folder = scaffold.remove_team(args.name, root)
        print(
            f"Removed team {args.name!r} ({folder.relative_to(root)}) and regenerated "
            f"workspace.yaml and docker-compose.yml. `make up` removes its containers."
        )
        return 0
    if args.command == "set-image":
        scaffold.set_image(args.name, args.image, root)
        print(f"{args.name} now deploys {args.image}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
