"""The side-by-side table, with ratios and the goals of issue [bench]."""

GOALS = {
    # [fast-runs]: 1.5 s is the aim, 2.5 s the floor.
    "one_step_p50_seconds": 1.5,
    "one_step_p50_seconds_containers": 2.0,
    "fan_out_over_in_process": 2.0,
    "team_pss_mib": 400,
    "cache_hit_over_raw_load": 1.2,
    "write_peak_rss_over_object": 1.3,
    "local_cold_start_seconds": 10.0,
}


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else f"missed by {value - goal:.2f}"


def container_rows(containers: dict) -> list[str]:
    """Warm run workers against a container per run (isolation mode, the way vanilla
    dagster-docker starts every run), on the same compose stack."""
    rows = []
    if one := containers.get("one_step"):
        warm, cold = one["warm"], one["container_per_run"]
        for phase in ("total", "queue", "launch", "execution", "lag"):
            goal = ""
            if phase == "total":
                goal = (
                    f"p50 <= 2.0 s: "
                    f"{verdict(warm[phase]['p50'], GOALS['one_step_p50_seconds_containers'])}"
                )
            rows.append(
                f"| containers: 1-step run, {phase} (p50 / p90 s); vanilla column = a container "
                f"per run | {warm[phase]['p50']} / {warm[phase]['p90']} | {cold[phase]['p50']} / "
                f"{cold[phase]['p90']} | {ratio(warm[phase]['p50'], cold[phase]['p50'])} | {goal} |"
            )
    for team, mib in containers.get("team_idle_pss_mib", {}).items():
        rows.append(
            f"| containers: idle PSS, team {team} (code server + step and run workers, MiB) | "
            f"{mib} | | | |"
        )
    rows.append(
        f"| container cold start to all healthy, images prebuilt (s) | "
        f"{containers['seconds_to_healthy']} | | | |"
    )
    return rows


def dequeue_rows(dequeue: dict) -> list[str]:
    """The daemon's idle CPU (percent of one core) and the queue time at each dequeue interval;
    vanilla's daemon keeps the default 5 s."""
    rows = []
    for interval, measured in dequeue["platform"].items():
        vanilla = dequeue["vanilla_5s_daemon_idle_cpu_percent"]
        rows.append(
            f"| daemon idle CPU (% of a core) / queue p50 (s), dequeue_interval_seconds "
            f"{interval}; "
            f"vanilla column = its 5 s daemon | {measured['daemon_idle_cpu_percent']} / "
            f"{measured['queue_p50_seconds']} | {vanilla} | | |"
        )
    return rows


def run_rows_security_rows(measured: dict) -> list[str]:
    """A team's event insert with the run tables' row-level security on, and off (vanilla's)."""
    return [
        "| a team's event write, Postgres' own time per event (µs); vanilla column = "
        f"no row-level security | {measured['policy_on_us_per_event']} | "
        f"{measured['policy_off_us_per_event']} | | |"
    ]


def object_store_scoping_rows(measured: dict) -> list[str]:
    """A team's 1 KiB put or get, as its own scoped identity and as the administrator."""
    return [
        "| a team's object-store request, 1 KiB put or get (ms); vanilla column = one "
        f"unscoped identity | {measured['team_identity_ms_per_request']} | "
        f"{measured['administrator_ms_per_request']} | | |"
    ]


def object_store_rows(results: dict) -> list[str]:
    lines: list[str] = []
    if outputs := results.get("step_outputs"):
        store, volume = outputs["object-store"], outputs["volume"]
        lines += [
            "Where step outputs live (run process start to success, median of "
            f"{outputs['runs']} runs each, alternating):",
            "",
            "| | object store (default) | shared volume | ratio |",
            "|---|---|---|---|",
            f"| 50-step fan-out (s) | {store['fan_out']} | {volume['fan_out']} | "
            f"{ratio(store['fan_out'], volume['fan_out'])} |",
            f"| one {outputs['large_output_mb']} MB output, written then read by the next step "
            f"(s) | {store['large_output']} | {volume['large_output']} | "
            f"{ratio(store['large_output'], volume['large_output'])} |",
            "",
        ]
    if reads := results["wandb_io"].get("store_reads"):
        seconds = reads["seconds"]
        lines += [
            f"W&B artifact of {reads['size_mb']} MB in the object store (offline store of record, "
            f"median of {reads['repeat']}):",
            "",
            "| write | read, writer's host (cache hit) | read, cold host (from the store) | "
            "cold host again | cold fetch |",
            "|---|---|---|---|---|",
            f"| {seconds['write']} s | {seconds['hit']} s | {seconds['cold']} s | "
            f"{seconds['cold_again']} s | {reads['cold_bytes_fetched']} bytes at "
            f"{reads['cold_fetch_mb_per_s']} MB/s |",
            "",
        ]
    return lines


def header_lines(results: dict) -> list[str]:
    return [
        f"Benchmark of {results['date']} ({results['machine']['cpus']} cores); platform vs "
        "vanilla Dagster 1.13.27 + dagster-celery 0.29.27, alternating, medians unless noted.",
        "",
        "| measure | platform | vanilla | platform / vanilla | goal |",
        "|---|---|---|---|---|",
    ]


def one_step_rows(one: dict) -> list[str]:
    rows = []
    for phase in ("total", "queue", "launch", "execution", "lag"):
        ours, theirs = one["platform"][phase], one["vanilla"][phase]
        goal = ""
        if phase == "total":
            goal = f"p50 <= 1.5 s: {verdict(ours['p50'], GOALS['one_step_p50_seconds'])}"
        rows.append(
            f"| 1-step run, {phase} (p50 / p90 s) | {ours['p50']} / {ours['p90']} | "
            f"{theirs['p50']} / {theirs['p90']} | {ratio(ours['p50'], theirs['p50'])} | {goal} |"
        )
    return rows


def burst_rows(burst: dict) -> list[str]:
    ours, theirs = burst["platform"], burst["vanilla"]
    per_minute = ours["runs_per_minute"], theirs["runs_per_minute"]
    return [
        f"| {ours['runs']} 1-step runs of one team at once, each (p50 / p90 s) | "
        f"{ours['p50']} / {ours['p90']} | {theirs['p50']} / {theirs['p90']} | "
        f"{ratio(ours['p50'], theirs['p50'])} | |",
        f"| the same burst, runs per minute | {per_minute[0]} | {per_minute[1]} | "
        f"{ratio(*per_minute)} | |",
    ]


def shape_rows(shapes: dict) -> list[str]:
    """Each shape on Celery for both, then the same job in-process and multiprocess on the
    platform: the in-process time is the floor the fan-out goal is measured against."""
    rows = []
    in_process = shapes["in_process"]
    for shape, label in (
        ("fan_out", f"{shapes['fan_out_width']}-step fan-out"),
        ("chain", "3-step chain"),
    ):
        ours, theirs = shapes["celery"]["platform"][shape], shapes["celery"]["vanilla"][shape]
        over = ours / in_process[shape]
        goal = ""
        if shape == "fan_out":
            goal = (
                f"<= 2x in-process: {over:.2f}x, {verdict(over, GOALS['fan_out_over_in_process'])}"
            )
        rows.append(
            f"| {label} on Celery (s) | {ours} | {theirs} | {ratio(ours, theirs)} | {goal} |"
        )
        rows.append(
            f"| {label}, in-process / multiprocess (s) | {in_process[shape]} / "
            f"{shapes['multiprocess'][shape]} | | | |"
        )
    return rows


def worker_task_rows(worker_task_seconds: dict) -> list[str]:
    ours, theirs = (worker_task_seconds[k] for k in ("platform", "vanilla"))
    return [
        f"| Celery task per step, in the worker (p50 / p90 s) | {ours['p50']} / {ours['p90']} "
        f"| {theirs['p50']} / {theirs['p90']} | {ratio(ours['p50'], theirs['p50'])} | |"
    ]


def idle_pss_rows(pss: dict) -> list[str]:
    rows = []
    for team, ours in pss["platform"]["teams"].items():
        theirs = pss["vanilla"]["teams"][team]
        rows.append(
            f"| idle PSS, team {team} (code server + workers, MiB) | {ours} | {theirs} | "
            f"{ratio(ours, theirs)} | <= 400: {verdict(ours, GOALS['team_pss_mib'])} |"
        )
    for service in ("webserver", "daemon", "postgres", "redis"):
        ours, theirs = pss["platform"]["services"][service], pss["vanilla"]["services"][service]
        rows.append(f"| idle PSS, {service} (MiB) | {ours} | {theirs} | {ratio(ours, theirs)} | |")
    return rows


def cold_start_rows(cold: dict) -> list[str]:
    return [
        f"| local cold start to all healthy (s) | {cold['platform']} | {cold['vanilla']} | "
        f"{ratio(cold['platform'], cold['vanilla'])} | <= 10 s: "
        f"{verdict(cold['platform'], GOALS['local_cold_start_seconds'])} |"
    ]


def wandb_io_lines(wandb_io: dict) -> list[str]:
    """Its own table after the main one: these rows have no vanilla column to compare with."""
    lines = [
        "",
        "W&B IO manager, one object of about 100 MB:",
        "",
        "| object | write MB/s | write peak RSS / object | cache-hit read / raw pickle.load | "
        "disk bytes per artifact byte |",
        "|---|---|---|---|---|",
    ]
    for row in wandb_io["package"]["results"]:
        rss = row["write_peak_rss_over_object"]
        hit = row["cache_hit_over_raw_pickle_load"]
        lines.append(
            f"| {row['kind']} | {row['write_MBps']} | "
            f"{rss} ({verdict(rss, GOALS['write_peak_rss_over_object'])}) | "
            f"{hit} ({verdict(hit, GOALS['cache_hit_over_raw_load'])}) | "
            f"{row['disk_bytes_per_artifact_byte']} |"
        )
    cross = wandb_io["cross_team"]
    lines += [
        "",
        f"Cross-team read of a {cross['artifact_bytes'] // 2**20} MiB artifact (online path, "
        f"fake W&B cloud): {cross['bytes_fetched_digest_cached']} bytes fetched with the digest "
        f"in the shared cache, {cross['bytes_fetched_cold_cache']} from a cold cache.",
        "",
    ]
    return lines


def signature_lines(signatures: dict) -> list[str]:
    return [
        f"Signing a {signatures['payload_mb']} MB payload: both schemes sign its chunk "
        f"digests, {signatures['chunk_digests_ms']} ms, computed while it is written.",
        "",
        "| over the digests | sign ms | verify ms |",
        "|---|---|---|",
        f"| per-team Ed25519 (now) | {signatures['ed25519_sign_ms']} | "
        f"{signatures['ed25519_verify_ms']} |",
        f"| shared-key HMAC-SHA256 (before) | {signatures['hmac_sha256_sign_ms']} | "
        f"{signatures['hmac_sha256_verify_ms']} |",
        "",
    ]


def ui_roles_lines(measured: dict) -> list[str]:
    """A GraphQL request to the webserver with the UI's roles, and without (the same program)."""
    lines = [
        "",
        f"The UI's roles: a GraphQL request to the webserver, {measured['requests']} of each, "
        "alternated, on loopback (the login proxy in front adds the same to both):",
        "",
        "| request | with roles p50 / p95 (ms) | without p50 / p95 (ms) |",
        "|---|---|---|",
    ]
    for case, kinds in measured["cases"].items():
        cells = [
            f"{kinds[kind]['p50_ms']} / {kinds[kind]['p95_ms']}" if kind in kinds else "n/a"
            for kind in ("roles", "plain")
        ]
        lines.append(f"| {case} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def markdown(results: dict) -> str:
    # Sections a results file may lack (older runs, --no-containers, a failed section) are
    # skipped rather than rendered empty, so old results files still render.
    lines = header_lines(results)
    lines += one_step_rows(results["one_step"])
    if "burst" in results:
        lines += burst_rows(results["burst"])
    lines += shape_rows(results["shapes"])
    if "worker_task_seconds" in results:
        lines += worker_task_rows(results["worker_task_seconds"])
    lines += idle_pss_rows(results["idle_pss_mib"])
    lines += cold_start_rows(results["cold_start_local_seconds"])
    if "dequeue" in results:
        lines += dequeue_rows(results["dequeue"])
    if "run_rows_security" in results:
        lines += run_rows_security_rows(results["run_rows_security"])
    if "object_store_scoping" in results:
        lines += object_store_scoping_rows(results["object_store_scoping"])
    if "containers" in results:
        lines += container_rows(results["containers"])
    lines += wandb_io_lines(results["wandb_io"])
    lines += object_store_rows(results)
    if "ui_roles" in results:
        lines += ui_roles_lines(results["ui_roles"])
    if signatures := results["wandb_io"].get("signatures"):
        lines += signature_lines(signatures)
    return "\n".join(lines)
