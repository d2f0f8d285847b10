import threading
import time

import pytest
from celery import Celery, states

from dagster_team_celery import settings
from dagster_team_celery.steps.executor import team_celery_executor


def test_missing_broker_url_names_the_variable_and_the_fix(monkeypatch):
    monkeypatch.delenv(settings.BROKER_URL_ENV, raising=False)
    with pytest.raises(settings.PlatformConfigError, match=r"DAGSTER_CELERY_BROKER_URL.*make env"):
        settings.broker_url()


def test_worker_without_a_team_is_refused(monkeypatch):
    monkeypatch.delenv(settings.TEAM_ENV, raising=False)
    with pytest.raises(settings.PlatformConfigError, match="DAGSTER_TEAM=bakery"):
        settings.team_name()


@pytest.mark.parametrize("raw", ["soon", "0", "-5"])
def test_bad_visibility_timeout_is_refused(monkeypatch, raw):
    monkeypatch.setenv(settings.VISIBILITY_TIMEOUT_ENV, raw)
    with pytest.raises(settings.PlatformConfigError, match="positive number of seconds"):
        settings.visibility_timeout_seconds()


def test_settings_deliver_each_step_at_least_once(monkeypatch):
    monkeypatch.setenv(settings.VISIBILITY_TIMEOUT_ENV, "900")
    config = settings.celery_settings("bakery")
    assert config["task_default_queue"] == "bakery"
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["broker_transport_options"]["visibility_timeout"] == 900


def test_team_executor_routes_to_the_team_queue(monkeypatch):
    monkeypatch.setenv(settings.BROKER_URL_ENV, "redis://:secret@broker:6379/0")
    monkeypatch.setenv(settings.BACKEND_URL_ENV, "redis://:secret@broker:6379/1")
    executor = team_celery_executor("ml")
    assert executor.name == "ml_celery_executor"
    resolved = executor.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    config = resolved.value["config"]
    assert config["broker"] == "redis://:secret@broker:6379/0"
    assert config["backend"] == "redis://:secret@broker:6379/1"
    assert config["config_source"]["task_default_queue"] == "ml"


def test_team_executor_reads_the_broker_url_at_run_time_not_definition_time(monkeypatch):
    monkeypatch.delenv(settings.BROKER_URL_ENV, raising=False)
    monkeypatch.setenv(settings.BACKEND_URL_ENV, "redis://:secret@broker:6379/1")
    resolved = team_celery_executor("ml").config_schema.resolve_config({})
    assert not resolved.success
    assert "DAGSTER_CELERY_BROKER_URL" in str(resolved.errors[0].message)


def test_a_result_stored_while_redis_restarts_is_kept_not_turned_into_a_failure(
    monkeypatch, redis_server
):
    """A step that finishes while Redis restarts: its result waits for Redis instead of the
    connection error being recorded as the step's failure."""
    monkeypatch.setenv(settings.BROKER_URL_ENV, f"{redis_server.url}/0")
    monkeypatch.setenv(settings.BACKEND_URL_ENV, f"{redis_server.url}/1")
    app = Celery(broker=settings.broker_url(), backend=settings.backend_url())
    app.conf.update(settings.celery_settings("bakery"))
    app.backend.store_result("warm-up", "ok", states.SUCCESS)  # the connection is now pooled

    redis_server.stop()
    restarted = threading.Timer(1.5, redis_server.start)
    restarted.start()
    started = time.monotonic()
    try:
        app.backend.store_result("finished-during-restart", ["events"], states.SUCCESS)
    finally:
        restarted.join()  # so the fixture stops the restarted server, pass or fail

    assert time.monotonic() - started >= 1.0, "the store waited for Redis to come back"
    result = app.AsyncResult("finished-during-restart")
    assert (result.state, result.result) == (states.SUCCESS, ["events"])


def test_a_teams_run_queue_shares_its_key_prefix_and_redis_user():
    run_settings = settings.celery_settings(queue=settings.run_queue("bakery"), team="bakery")
    assert run_settings["task_default_queue"] == "bakery-runs"
    for options in ("broker_transport_options", "result_backend_transport_options"):
        assert run_settings[options]["global_keyprefix"] == "team:bakery:"


def test_a_malformed_run_grace_names_the_setting_and_the_default(monkeypatch):
    monkeypatch.setenv(settings.RUN_TERMINATE_GRACE_ENV, "soon")
    with pytest.raises(
        settings.PlatformConfigError, match=r"DAGSTER_RUN_TERMINATE_GRACE_SECONDS='soon'.*25"
    ):
        settings.run_terminate_grace_seconds()


def test_a_module_at_its_old_path_names_its_new_one():
    import importlib

    with pytest.raises(ModuleNotFoundError, match=r"moved to dagster_team_celery\.runs\.isolation"):
        importlib.import_module("dagster_team_celery.run_isolation")
    with pytest.raises(ModuleNotFoundError, match="No module named"):
        importlib.import_module("dagster_team_celery.no_such_module")
