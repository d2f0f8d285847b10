"""Several hosts, one store of record: offline artifacts in an S3 object store (SeaweedFS), the
index in Postgres, and each host's cache volume (a folder per host here) only a cache."""

import json
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from dagster_wandb_io import CacheCorruptionError
from dagster_wandb_io.artifact_objects import RETRY_SECONDS_ENV, ObjectStoreUnavailable
from dagster_wandb_io.cli import main as cli
from dagster_wandb_io.config import Selection, WriteConfig
from dagster_wandb_io.errors import ConfigurationError, OfflineIndexError, SignatureError
from dagster_wandb_io.testing import ENTITY, PROJECT, offline_store, run_spec

from helpers import CAKE_ROWS, cakes_table, edit_file_and_its_hashes, tampered_table_json
from stress_workers import (
    CTX,
    cold_reader,
    make_value,
    racing_publisher,
    run_processes,
    stress_worker,
    value_ok,
)

# Starts a real SeaweedFS and Postgres (make test-fast leaves it out).
pytestmark = pytest.mark.integration


def host(tmp_path: Path, name: str) -> Path:
    """A host's cache volume."""
    base = tmp_path / f"host-{name}"
    base.mkdir(exist_ok=True)
    return base


def on(tmp_path, name, shared, **settings):
    return offline_store(host(tmp_path, name), **shared.settings, **settings)


def child_settings(shared) -> dict:
    return {**shared.settings, "environment": shared.server.environment}


def document(shared, name: str) -> dict:
    with psycopg2.connect(shared.index_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT document FROM wandb_io.alias_maps WHERE entity = %s AND project = %s"
            " AND name = %s",
            (ENTITY, PROJECT, name),
        )
        return cursor.fetchone()[0]


def stored_payload_key(shared, result) -> str:
    keys = shared.server.objects(f"{shared.prefix}/{ENTITY}/{PROJECT}/{result.name}/")
    return next(k for k in keys if k.endswith("/files/output.pickle"))


def test_a_write_on_one_host_is_read_on_another_and_fetched_once_per_host(tmp_path, shared):
    value = make_value(1, size=2_000_000)
    written = on(tmp_path, "a", shared).write(
        value, name="model", config=WriteConfig(), run=run_spec()
    )
    stored = shared.server.objects(f"{shared.prefix}/{ENTITY}/{PROJECT}/model/{written.digest}/")
    assert any(key.endswith("/entry.json") for key in stored)
    payload = stored[stored_payload_key(shared, written)]

    first = on(tmp_path, "b", shared)
    assert value_ok(first.read("model", Selection()))
    assert first.stats.bytes_downloaded >= payload
    # Another process on host b: its cache has it now.
    again = on(tmp_path, "b", shared)
    assert value_ok(again.read("model", Selection()))
    assert again.stats.bytes_downloaded == 0
    # A third host fetches once more.
    third = on(tmp_path, "c", shared)
    assert value_ok(third.read("model", Selection()))
    assert third.stats.bytes_downloaded == first.stats.bytes_downloaded


def test_concurrent_readers_on_a_cold_host_fetch_each_byte_once(tmp_path, shared):
    names = [f"dataset-{i}" for i in range(3)]
    writer = on(tmp_path, "a", shared)
    for i, name in enumerate(names):
        writer.write(make_value(i, size=500_000), name=name, config=WriteConfig(), run=run_spec())
    barrier = CTX.Barrier(4)
    outs = [tmp_path / f"reader-{i}.json" for i in range(4)]
    codes = run_processes(
        [
            (
                cold_reader,
                (str(host(tmp_path, "b")), child_settings(shared), names, barrier, str(out)),
            )
            for out in outs
        ]
    )
    assert codes == [0] * 4
    stats = [json.loads(out.read_text()) for out in outs]
    assert [error for s in stats for error in s["errors"]] == []
    assert sum(s["corrupt"] for s in stats) == 0
    one_copy = sum(
        size for key, size in shared.server.objects(shared.prefix).items() if "/files/" in key
    )
    assert sum(s["bytes_downloaded"] for s in stats) == one_copy


def test_another_teams_artifact_is_read_across_hosts(tmp_path, shared):
    bakery = on(tmp_path, "bakery-host", shared, entity="bakery", project="cakes")
    bakery.write({"recipe": "carrot"}, name="recipes", config=WriteConfig(), run=run_spec())
    ml = on(tmp_path, "ml-host", shared, entity="ml", project="training")
    assert ml.read("recipes", Selection(), entity="bakery", project="cakes") == {"recipe": "carrot"}


def test_two_executions_of_one_step_publish_once(tmp_path, shared):
    """A redelivered step on another host, at the same moment: one transaction claims the run's
    publication, so both report the same version and only one exists."""
    dagster_run = "11111111-2222-3333-4444-555555555555"
    barrier = CTX.Barrier(2)
    outs = [tmp_path / f"publisher-{i}.json" for i in range(2)]
    codes = run_processes(
        [
            (
                racing_publisher,
                (
                    str(host(tmp_path, f"h{i}")),
                    child_settings(shared),
                    dagster_run,
                    i,
                    barrier,
                    str(out),
                ),
            )
            for i, out in enumerate(outs)
        ]
    )
    assert codes == [0, 0]
    results = [json.loads(out.read_text()) for out in outs]
    assert [r["errors"] for r in results] == [[], []]
    assert results[0]["digest"] == results[1]["digest"]
    assert sorted(r["reused"] for r in results) == [False, True]
    assert len(document(shared, "raced")["versions"]) == 1


def test_a_corrupt_object_in_the_store_is_refused_with_the_fix(tmp_path, shared):
    result = on(tmp_path, "a", shared).write(
        make_value(7), name="model", config=WriteConfig(), run=run_spec()
    )
    key = stored_payload_key(shared, result)
    s3 = shared.server.client()
    body = s3.get_object(Bucket="artifacts", Key=key)["Body"].read()
    s3.put_object(Bucket="artifacts", Key=key, Body=b"\0" * len(body))
    with pytest.raises(CacheCorruptionError, match="from the object store twice and its MD5"):
        on(tmp_path, "b", shared).read("model", Selection())


def test_a_corrupt_cached_copy_is_fetched_again_from_the_store(tmp_path, shared):
    value = make_value(8)
    on(tmp_path, "a", shared).write(value, name="model", config=WriteConfig(), run=run_spec())
    reader = on(tmp_path, "b", shared)
    assert value_ok(reader.read("model", Selection()))
    reader.close()
    [cached] = host(tmp_path, "b").glob("dagster_wandb_io/cache/*/*/model/*/files/output.pickle")
    cached.chmod(0o644)
    cached.write_bytes(b"\0" * cached.stat().st_size)
    assert value_ok(on(tmp_path, "b", shared).read("model", Selection()))


def test_an_edited_index_row_is_refused_and_its_version_names_never_reused(tmp_path, shared):
    """The attack: someone with the database's password points `latest` back at v0."""
    owner = on(tmp_path, "a", shared)
    for seed in (1, 2):
        owner.write(make_value(seed), name="model", config=WriteConfig(), run=run_spec(f"r{seed}"))
    edited = document(shared, "model")
    edited["aliases"]["latest"] = "v0"
    with psycopg2.connect(shared.index_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wandb_io.alias_maps SET document = %s WHERE name = 'model'",
            (json.dumps(edited),),
        )
    with pytest.raises(SignatureError, match="signature"):
        on(tmp_path, "b", shared).read("model", Selection())
    logged = []
    result = owner.write(
        make_value(3), name="model", config=WriteConfig(), run=run_spec("r3"), log=logged.append
    )
    assert "untrusted_alias_maps" in logged[0]
    assert result.version == "v2"


def test_a_write_while_the_store_is_down_fails_clearly_and_publishes_nothing(
    tmp_path, shared, monkeypatch
):
    monkeypatch.setenv(RETRY_SECONDS_ENV, "1")
    writer = on(tmp_path, "a", shared)
    shared.server.stop()
    try:
        with pytest.raises(ObjectStoreUnavailable, match="check that it is up"):
            writer.write(make_value(9), name="model", config=WriteConfig(), run=run_spec())
    finally:
        shared.server.start()
    assert on(tmp_path, "b", shared).index.names(ENTITY, PROJECT) == []


def test_a_write_completes_across_a_store_restart(tmp_path, shared):
    writer = on(tmp_path, "a", shared)
    shared.server.stop()
    restarted = threading.Timer(3.0, shared.server.start, kwargs={"create_bucket": False})
    restarted.start()
    started = time.monotonic()
    try:
        writer.write(make_value(10), name="model", config=WriteConfig(), run=run_spec())
    finally:
        restarted.join()
    print(f"\nwrite finished {time.monotonic() - started:.1f}s after the store went down")
    assert value_ok(on(tmp_path, "b", shared).read("model", Selection()))


def test_a_volumes_offline_artifacts_migrate_into_the_shared_store(tmp_path, shared, monkeypatch):
    before = host(tmp_path, "old")
    offline_store(before).write(make_value(11), name="legacy", config=WriteConfig(), run=run_spec())
    assert cli(["store", "migrate", "--base-dir", str(before)]) == 0
    assert value_ok(on(tmp_path, "new", shared).read("legacy", Selection()))
    # Again: nothing more to upload, and the shared index keeps its copy.
    assert cli(["store", "migrate", "--base-dir", str(before)]) == 0


def test_a_store_without_a_shared_index_is_refused(tmp_path, shared):
    with pytest.raises(ConfigurationError, match="DAGSTER_WANDB_IO_INDEX_URL"):
        offline_store(host(tmp_path, "a"), store_url=shared.store_url)


def test_eight_processes_on_two_hosts_share_one_store_and_index(tmp_path, shared):
    roles = ["writer"] * 3 + ["reader"] * 3 + ["evictor"] * 2
    barrier = CTX.Barrier(len(roles))
    outs = [tmp_path / f"stats-{i}.json" for i in range(len(roles))]
    codes = run_processes(
        [
            (
                stress_worker,
                (
                    role,
                    i,
                    str(host(tmp_path, f"{i % 2}")),
                    10.0,
                    barrier,
                    str(outs[i]),
                    child_settings(shared),
                ),
            )
            for i, role in enumerate(roles)
        ]
    )
    assert codes == [0] * len(roles)
    stats = [json.loads(out.read_text()) for out in outs]
    totals = {
        k: sum(s[k] for s in stats)
        for k in (
            "writes",
            "writes_refused",
            "reads",
            "corrupt",
            "not_found",
            "evicted_misses",
            "evictions",
        )
    }
    print(f"\n{totals}")
    assert [e for s in stats for e in s["errors"]] == []
    assert totals["corrupt"] == 0 and totals["evicted_misses"] == 0
    assert totals["writes"] >= 12 and totals["reads"] >= 15 and totals["evictions"] >= 1
    # Published once per run and name: every write of a (run, name) got the same version, and
    # the index holds at most one version per run for each name.
    seen: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for s in stats:
        for run, name, digest, version in s["published"]:
            seen.setdefault((run, name), set()).add((digest, version))
    assert all(len(outcomes) == 1 for outcomes in seen.values()), seen
    for name in {name for _, name in seen}:
        runs = [v["info"]["dagster_run_id"] for v in document(shared, name)["versions"]]
        assert len(runs) == len(set(runs)), (name, runs)


def test_an_older_signed_index_row_put_back_is_refused_as_a_rollback(tmp_path, shared):
    """The replay: someone with the database's password puts back an older document the owner
    signed, to roll `latest` back. A reader that has seen the newer one refuses it."""
    owner = on(tmp_path, "a", shared)
    owner.write(make_value(1), name="model", config=WriteConfig(), run=run_spec("r1"))
    older = document(shared, "model")
    owner.write(make_value(2), name="model", config=WriteConfig(), run=run_spec("r2"))
    reader = on(tmp_path, "b", shared)
    assert reader.read("model", Selection())["seed"] == 2
    with psycopg2.connect(shared.index_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wandb_io.alias_maps SET document = %s WHERE name = 'model'",
            (json.dumps(older),),
        )
    with pytest.raises(SignatureError, match="rolled back"):
        reader.read("model", Selection())


def test_migration_refuses_a_forged_index_file_and_imports_nothing_from_it(tmp_path, shared):
    """The attack: an edited index file on a host's volume, hoping migration makes it every
    host's truth."""
    before = host(tmp_path, "old")
    offline_store(before).write(make_value(12), name="legacy", config=WriteConfig(), run=run_spec())
    [index_file] = before.glob("dagster_wandb_io/index/*/*/legacy.json")
    forged = json.loads(index_file.read_text())
    forged["aliases"]["production"] = forged["aliases"]["latest"]
    index_file.write_text(json.dumps(forged))
    assert cli(["store", "migrate", "--base-dir", str(before)]) == 0
    assert on(tmp_path, "new", shared).index.names(ENTITY, PROJECT) == []


def test_a_cold_hosts_read_through_dagster_logs_the_bytes_it_fetched_once(
    tmp_path, shared, monkeypatch
):
    from dagster import AssetIn, DagsterInstance, asset, materialize

    from helpers import SEED_RUN_CONFIG, seed_resources

    @asset(io_manager_key="wandb_artifacts_manager")
    def table() -> dict:
        return {"rows": list(range(1000))}

    @asset(ins={"table": AssetIn(input_manager_key="wandb_artifacts_manager")})
    def report(table: dict) -> int:
        return len(table["rows"])

    def fetched_messages(base: Path) -> list[str]:
        monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(base))
        instance = DagsterInstance.ephemeral()
        result = materialize(
            [table, report],
            selection=[report],
            resources=seed_resources(),
            run_config=SEED_RUN_CONFIG,
            instance=instance,
        )
        assert result.success and result.output_for_node("report") == 1000
        logs = instance.all_logs(result.run_id)
        return [e.user_message for e in logs if e.user_message.startswith("Fetched ")]

    monkeypatch.setenv("DAGSTER_WANDB_IO_BASE_DIR", str(host(tmp_path, "writer")))
    assert materialize([table], resources=seed_resources(), run_config=SEED_RUN_CONFIG).success
    # The writer's own cache holds it: nothing crosses the network there.
    assert fetched_messages(host(tmp_path, "writer")) == []
    first = fetched_messages(host(tmp_path, "cold"))
    assert len(first) == 1 and "files) of table into this host's artifact cache" in first[0]
    assert int(first[0].split()[1]) > 1000
    assert fetched_messages(host(tmp_path, "cold")) == []


def test_a_cached_table_edited_with_its_hashes_is_fetched_again_from_the_store(tmp_path, shared):
    on(tmp_path, "a", shared).write(
        cakes_table(), name="cakes", config=WriteConfig(), run=run_spec()
    )
    reader = on(tmp_path, "b", shared)
    assert reader.read("cakes", Selection(get="rows")).data == CAKE_ROWS
    reader.close()
    [manifest] = host(tmp_path, "b").glob("dagster_wandb_io/cache/*/*/cakes/*/entry.json")
    entry_dir = manifest.parent
    edit_file_and_its_hashes(entry_dir, "rows.table.json", tampered_table_json(entry_dir))
    assert on(tmp_path, "b", shared).read("cakes", Selection(get="rows")).data == CAKE_ROWS


def test_an_index_row_held_by_a_stuck_transaction_fails_the_write_in_time(
    tmp_path, shared, monkeypatch
):
    """Before the bound, the write waited on the row lock for as long as the holder lived."""
    from dagster_wandb_io.index_postgres import LOCK_TIMEOUT_ENV

    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2")
    writer = on(tmp_path, "a", shared)
    writer.write(make_value(1), name="model", config=WriteConfig(), run=run_spec())
    writer.close()
    stuck = psycopg2.connect(shared.index_url)
    try:
        with stuck.cursor() as cursor:
            cursor.execute("SELECT 1 FROM wandb_io.alias_maps WHERE name = 'model' FOR UPDATE")
        with pytest.raises(OfflineIndexError, match="held the artifact's row for over 2s"):
            on(tmp_path, "b", shared).write(
                make_value(2), name="model", config=WriteConfig(), run=run_spec()
            )
    finally:
        stuck.rollback()
        stuck.close()
    # Once the holder is gone, the same write goes through.
    on(tmp_path, "b", shared).write(
        make_value(2), name="model", config=WriteConfig(), run=run_spec()
    )


def test_a_login_that_may_not_create_the_index_names_the_command_that_does(tmp_path, shared):
    """A team's Postgres role may create nothing: before `store migrate` (the platform's init,
    as the owner) made the tables, its write fails naming that command, not a bare 'permission
    denied'; after it, the same login writes."""
    owner = psycopg2.connect(shared.index_url)
    owner.autocommit = True
    database = shared.index_url.rsplit("/", 1)[1]
    with owner.cursor() as cursor:
        cursor.execute("DROP ROLE IF EXISTS rows_only")
        cursor.execute("CREATE ROLE rows_only LOGIN PASSWORD 'rows-only'")
        cursor.execute(f"REVOKE CREATE ON DATABASE {database} FROM PUBLIC")
    credentials = shared.index_url.split("//", 1)[1].split("@", 1)[0]
    as_rows_only = {
        **shared.settings,
        "index_url": shared.index_url.replace(credentials, "rows_only:rows-only"),
    }
    with pytest.raises(ConfigurationError, match="dagster-wandb-io store"):
        offline_store(host(tmp_path, "a"), **as_rows_only).write(
            make_value(1), name="model", config=WriteConfig(), run=run_spec()
        )
    assert cli(["store", "migrate", "--base-dir", str(host(tmp_path, "init"))]) == 0
    with owner.cursor() as cursor:
        cursor.execute("GRANT USAGE ON SCHEMA wandb_io TO rows_only")
        cursor.execute("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA wandb_io TO rows_only")
        cursor.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA wandb_io TO rows_only")
    owner.close()
    offline_store(host(tmp_path, "b"), **as_rows_only).write(
        make_value(2), name="model", config=WriteConfig(), run=run_spec()
    )
