"""`dagster-wandb-io` console script: inspect, verify and evict the shared cache; make keys;
move a volume's offline artifacts into the shared object store."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .cache import BASE_DIR_ENV, Layout, SharedCache, describe, md5_file_b64, resolve_base_dir
from .errors import CacheCorruptionError, ConfigurationError
from .eviction import evict
from .keys import (
    PRIVATE_KEY_FILE_ENV,
    TRUSTED_KEYS_ENV,
    TrustStore,
    allow_unsigned_from_environment,
    generate_private_key,
    public_key_of,
    write_private,
    write_trust_file,
)


def _base_dir(value: str | None) -> Path:
    try:
        return resolve_base_dir(value)
    except ConfigurationError as exc:
        raise SystemExit(f"error: pass --base-dir or set {BASE_DIR_ENV}") from exc


def _verify(base: Path) -> tuple[list[dict[str, object]], int]:
    cache = SharedCache(Layout(base))
    rows = []
    bad = 0
    for entry in cache.iter_entries():
        row = describe(entry)
        problems: list[str] = []
        try:
            manifest = entry.read_manifest()
        except CacheCorruptionError as exc:
            manifest = None
            problems.append(str(exc))
        if manifest is not None:
            with cache.using(entry):
                for path, record in manifest.files.items():
                    if not entry.has_file(path):
                        continue  # not fetched yet (partial reads fetch only what they need)
                    if record.xxh128 is None:
                        ok = md5_file_b64(entry.file_path(path)) == record.md5
                    else:
                        ok = entry.check_file(path, record)
                    if not ok:
                        problems.append(f"{path}: content does not match its digest")
        row["problems"] = problems
        bad += bool(problems)
        rows.append(row)
    return rows, bad


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagster-wandb-io", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    cache_p = sub.add_parser("cache", help="shared artifact cache")
    cache_sub = cache_p.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--base-dir", help=f"cache base dir (default ${BASE_DIR_ENV})")

    ev = cache_sub.add_parser("evict", help="evict entries unused for longer than their TTL")
    common(ev)
    ev.add_argument(
        "--older-than-minutes",
        type=float,
        default=None,
        help="evict entries unused for this long (default: each entry's recorded TTL)",
    )
    ev.add_argument("--digest", help="evict only this entry (regardless of age)")
    ev.add_argument(
        "--include-offline",
        action="store_true",
        help="also evict entries written offline (their only local copy until `wandb sync`)",
    )
    ev.add_argument("--dry-run", action="store_true")
    ls = cache_sub.add_parser("ls", help="list cache entries as JSON lines")
    common(ls)
    vf = cache_sub.add_parser("verify", help="check every cached file against its digest")
    common(vf)

    keys_p = sub.add_parser("keys", help="per-team signing keys")
    keys_sub = keys_p.add_subparsers(dest="command", required=True)
    gen = keys_sub.add_parser(
        "generate", help="make a team's Ed25519 key and add its public key to a trust file"
    )
    gen.add_argument("--team", required=True)
    gen.add_argument("--entity", action="append", required=True, help="an entity the team owns")
    gen.add_argument("--trust-file", required=True, type=Path)
    gen.add_argument(
        "--private-key-file", required=True, type=Path, help="written owner-only (0600)"
    )

    store_p = sub.add_parser("store", help="the shared offline store of record")
    store_sub = store_p.add_subparsers(dest="command", required=True)
    mig = store_sub.add_parser(
        "migrate",
        help="upload this volume's offline artifacts to the object store and copy their index"
        " into the shared index (DAGSTER_WANDB_IO_STORE_URL, DAGSTER_WANDB_IO_INDEX_URL)",
    )
    common(mig)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.group == "keys":
        return _generate_keys(args)
    if args.group == "store":
        return _migrate(_base_dir(args.base_dir))
    base = _base_dir(args.base_dir)
    if args.command == "evict":
        report = evict(
            base,
            older_than_minutes=args.older_than_minutes,
            include_offline=args.include_offline,
            digest=args.digest,
            dry_run=args.dry_run,
        )
        print(json.dumps(report.to_json(), indent=1))
        return 0
    if args.command == "ls":
        for entry in SharedCache(Layout(base)).iter_entries():
            print(json.dumps(describe(entry), sort_keys=True))
        return 0
    rows, bad = _verify(base)
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    print(f"{len(rows)} entries, {bad} with problems", file=sys.stderr)
    return 1 if bad else 0


def _migrate(base: Path) -> int:
    from .errors import WandbArtifactsIOManagerError
    from .index_postgres import PostgresIndex
    from .migration import migrate
    from .store import ArtifactStore, StoreSettings, shared_storage_from_environment

    shared = shared_storage_from_environment()
    if not shared["store_url"]:
        print("No shared store configured (DAGSTER_WANDB_IO_STORE_URL): nothing to migrate.")
        return 0
    try:
        # Entity and project only name the store's own; migration covers every entity's.
        store = ArtifactStore(
            StoreSettings(
                base_dir=base,
                mode="offline",
                entity="migration",
                project="migration",
                host="",
                allow_unsigned=allow_unsigned_from_environment(),
                **shared,
            )
        )
        if isinstance(store.index.backend, PostgresIndex):
            # Created here, by init as the database's owner: teams' roles may create nothing.
            store.index.backend.ensure_schema()
        report = migrate(base, store)
    except WandbArtifactsIOManagerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_json(), indent=1))
    print(
        f"migrated {len(report.uploaded)} versions ({report.bytes_uploaded} bytes) and"
        f" {len(report.indexed)} index documents; {report.already_stored} already stored,"
        f" {len(report.missing)} missing here, {len(report.refused)} refused",
        file=sys.stderr,
    )
    for problem in report.refused:
        print(f"not migrated: {problem}", file=sys.stderr)
    # Refused documents are listed, not fatal: the platform's init runs this at every start,
    # and one artifact's bad index file must not keep every team's services down.
    return 0


def _generate_keys(args: argparse.Namespace) -> int:
    private_key = generate_private_key()
    teams: dict[str, tuple[str, list[str]]] = {}
    if args.trust_file.exists():
        try:
            known = TrustStore.load(args.trust_file)
        except ConfigurationError as error:
            raise SystemExit(f"error: {error}") from None
        teams = {
            t.team: (t.public_key.public_bytes_raw().hex(), sorted(t.entities))
            for t in known.teams.values()
        }
    teams[args.team] = (public_key_of(private_key), args.entity)
    write_private(args.private_key_file, private_key + "\n")
    write_trust_file(args.trust_file, teams)
    print(
        f"Team {args.team!r} signs with {args.private_key_file}; give its processes"
        f" {PRIVATE_KEY_FILE_ENV}={args.private_key_file} and every reader"
        f" {TRUSTED_KEYS_ENV}={args.trust_file}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
