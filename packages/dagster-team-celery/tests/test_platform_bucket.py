"""Where step outputs go, as the platform's component decides it from the environment."""

import pytest
from dagster_aws.s3 import S3PickleIOManager

from dagster_team_celery import platform_bucket
from dagster_team_celery.component import TeamPlatformComponent


def test_step_outputs_keep_dagsters_default_outside_the_platform(monkeypatch):
    monkeypatch.delenv(platform_bucket.STEP_OUTPUTS_ENV, raising=False)
    assert platform_bucket.step_outputs() == "volume"
    assert platform_bucket.step_output_io_manager("bakery") is None


def test_an_unknown_choice_is_refused_with_the_setting_to_fix(monkeypatch):
    monkeypatch.setenv(platform_bucket.STEP_OUTPUTS_ENV, "nfs")
    with pytest.raises(platform_bucket.ObjectStoreError, match="'nfs' is not one of object-store"):
        platform_bucket.step_outputs()


def test_the_object_store_io_manager_names_the_bucket_variable_not_its_value(monkeypatch):
    monkeypatch.setenv(platform_bucket.STEP_OUTPUTS_ENV, "object-store")
    monkeypatch.setenv(platform_bucket.BUCKET_ENV, "private-bucket-name")
    io_manager = platform_bucket.step_output_io_manager("bakery")
    assert isinstance(io_manager, S3PickleIOManager)
    assert io_manager.s3_prefix == "step-outputs/bakery/"
    # What goes into the definitions' snapshot (shown in the UI) is the variable's name.
    assert "private-bucket-name" not in repr(io_manager._get_non_default_public_field_values())


def test_every_team_job_gets_the_platforms_io_manager(monkeypatch):
    monkeypatch.setenv(platform_bucket.STEP_OUTPUTS_ENV, "object-store")
    monkeypatch.setenv(platform_bucket.BUCKET_ENV, "platform")
    defs = TeamPlatformComponent(team="bakery").build_defs(None)  # type: ignore[arg-type]
    assert isinstance(defs.resources["io_manager"], S3PickleIOManager)
    monkeypatch.setenv(platform_bucket.STEP_OUTPUTS_ENV, "volume")
    assert "io_manager" not in TeamPlatformComponent(team="bakery").build_defs(None).resources  # type: ignore[arg-type]


def test_a_missing_bucket_names_the_setting_and_make_env(monkeypatch):
    monkeypatch.delenv(platform_bucket.BUCKET_ENV, raising=False)
    with pytest.raises(platform_bucket.ObjectStoreError, match=r"OBJECT_STORE_BUCKET in \.env"):
        platform_bucket.bucket()
