"""Run a probe job with Dagster's in-process or multiprocess executor, for comparison.

Run by a team's own interpreter, with the team's environment (same Postgres instance as the
Celery runs), e.g. `BENCH_JOB=probe_fan_out BENCH_EXECUTOR=multiprocess python in_process.py`.
Prints the run's duration from its own RUN_START and RUN_SUCCESS events, as JSON.
"""

import json
import os
import sys
import time

import dagster as dg

from dagster_team_celery.probes import build_probe_jobs

EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}
JOBS = {job.name: job for job in build_probe_jobs(EXECUTORS[os.environ["BENCH_EXECUTOR"]])}


def bench_job() -> dg.JobDefinition:
    # Module-level, so the multiprocess executor's step processes can reconstruct it.
    return JOBS[os.environ["BENCH_JOB"]]


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        started = time.time()
        result = dg.execute_job(dg.reconstructable(bench_job), instance=instance)
        finished = time.time()
        assert result.success, f"{os.environ['BENCH_JOB']} failed"
        at = {}
        for entry in instance.all_logs(result.run_id):
            if entry.dagster_event and entry.dagster_event.event_type_value in (
                "PIPELINE_START",
                "PIPELINE_SUCCESS",
            ):
                at[entry.dagster_event.event_type_value] = entry.timestamp
    print(
        json.dumps(
            {
                "run_seconds": round(at["PIPELINE_SUCCESS"] - at["PIPELINE_START"], 3),
                "wall_seconds": round(finished - started, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
