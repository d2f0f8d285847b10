"""Teams joining and leaving the compose stack: a scaffolded team added and removed without
recreating any other container, and a team from its own repository deployed by image and
redeployed by a new tag. On a compose stack of their own (tests/compose_stack.py), so that
`make test` runs them beside the other container tests rather than after them."""

import subprocess
import time

import pytest

from registry.scaffold import copy_template
from tests.compose_stack import (
    EXTERNAL_TEAM,
    NEW_TEAM,
    RUN_PROCESS,
    assert_sample_job_runs_on_its_team,
    build_external_team_image,
    docker_inspect,
    team_services,
)
from tests.terminate import wait_for_event

pytestmark = pytest.mark.container


def test_adding_and_removing_a_team_recreates_no_other_container(compose_stack, compose_client):
    before = compose_stack.all_container_ids()
    images_before = compose_stack.image_ids()
    started = time.monotonic()
    scaffolded = compose_stack.script("-m", "registry", "new", "--no-sync", NEW_TEAM)
    assert scaffolded.returncode == 0, scaffolded.stderr
    scaffold_seconds = time.monotonic() - started
    compose_stack.up_like_make_up()
    up_seconds = time.monotonic() - started
    assert_sample_job_runs_on_its_team(compose_client, NEW_TEAM)
    green_seconds = time.monotonic() - started

    after = compose_stack.all_container_ids()
    print(
        f"\nnew team: scaffolded {scaffold_seconds:.1f}s, its image built and services healthy "
        f"{up_seconds:.1f}s, sample_job SUCCESS {green_seconds:.1f}s after `make new-team`"
    )
    assert set(after) - set(before) == team_services(NEW_TEAM)
    recreated = [service for service in before if before[service] != after[service]]
    images_after = compose_stack.image_ids()
    changed_images = {
        image: (images_before[image], images_after[image])
        for image in images_before
        if images_before[image] != images_after.get(image)
    }
    assert recreated == [], f"adding a team recreated {recreated}; images changed: {changed_images}"

    removed = compose_stack.script("-m", "registry", "remove", NEW_TEAM)
    assert removed.returncode == 0, removed.stderr
    compose_stack.up_like_make_up()
    assert compose_stack.all_container_ids() == before
    assert NEW_TEAM not in compose_client.locations()


def test_a_team_from_its_own_repository_deploys_by_image_and_redeploys_a_new_tag(
    compose_stack, compose_client
):
    # The team's repository: the template, kept outside code_locations/, built into an image.
    source = compose_stack.checkout / "external" / EXTERNAL_TEAM
    copy_template(EXTERNAL_TEAM, compose_stack.checkout)
    source.parent.mkdir(parents=True, exist_ok=True)
    (compose_stack.checkout / "code_locations" / EXTERNAL_TEAM).rename(source)
    subprocess.run(["uv", "lock", "--quiet"], cwd=source, check=True)
    first = build_external_team_image(compose_stack, "1")
    entry = compose_stack.checkout / "code_locations" / EXTERNAL_TEAM
    entry.mkdir()
    (entry / "team.toml").write_text(f'image = "{first}"\n')
    generated = compose_stack.script("-m", "registry", "generate")
    assert generated.returncode == 0, generated.stderr
    compose_stack.make_env()  # the new team's signing key, before compose reads the file
    before = compose_stack.all_container_ids()
    compose_stack.up_like_make_up()
    assert_sample_job_runs_on_its_team(compose_client, EXTERNAL_TEAM)

    # A new version in the team's repository (a second job), a new tag, no rebuild here.
    assets = source / "src" / EXTERNAL_TEAM / "defs" / "assets.py"
    assets.write_text(
        assets.read_text() + '\nsample_job_v2 = dg.define_asset_job("sample_job_v2", "*")\n'
    )
    second = build_external_team_image(compose_stack, "2")
    running = compose_stack.all_container_ids()
    started = time.monotonic()
    moved = compose_stack.script("-m", "registry", "set-image", EXTERNAL_TEAM, second)
    assert moved.returncode == 0, moved.stderr
    redeployed = compose_stack.redeploy(EXTERNAL_TEAM)
    print(f"\nredeploy by image: {time.monotonic() - started:.1f}s: {redeployed.stdout[-200:]}")
    assert redeployed.returncode == 0, redeployed.stdout[-3000:] + redeployed.stderr[-3000:]
    assert " build " not in redeployed.stdout
    after = compose_stack.all_container_ids()
    changed = {service for service in running if running[service] != after[service]}
    assert changed == team_services(EXTERNAL_TEAM)
    image = compose_stack.run("config", "--images").split()
    assert second in image and first not in image

    run_id = compose_client.submit_job(EXTERNAL_TEAM, "sample_job_v2")
    assert compose_client.wait_for_run(run_id, timeout=300) == "SUCCESS"
    # The run executed in the team's warm run worker, recreated from the new image.
    run_worker = wait_for_event(compose_client, run_id, RUN_PROCESS, timeout=30).group(2)
    (container,) = compose_stack.container_ids(f"{EXTERNAL_TEAM}-worker")
    hostname, image_id = docker_inspect(container, "{{.Config.Hostname}} {{.Image}}").split()
    assert run_worker.endswith(f"@{hostname}"), (run_worker, hostname)
    # By ID: the engine may name the image with its registry (podman: docker.io/<second>).
    assert image_id == docker_inspect(second, "{{.Id}}"), "the run did not start from the new image"
    # `before` was read after the manifest was registered: the team's services were named
    # but had no container yet.
    started_since = {service for service in after if after[service] and not before.get(service)}
    assert started_since == team_services(EXTERNAL_TEAM)
