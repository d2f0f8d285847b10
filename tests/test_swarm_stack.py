"""The Swarm stack generated from docker-compose.yml and .env (registry/swarm_stack.py): valid,
free of secret values, placed by node labels, and without what Swarm ignores. No engine needed; the
two-node deployment itself is tests/test_swarm.py."""

import json
import re

import jsonschema
import pytest
import yaml

from registry import RegistryError, team_names
from registry.swarm_stack import SECRET_VARIABLE, generate, interpolate
from scripts import make_env
from tests.repo import COMPOSE_SCHEMA, HOST_SECRETS, REPO_ROOT, SECRET_VARIABLES

TEAMS = team_names(REPO_ROOT)


@pytest.fixture
def settings(tmp_path) -> dict[str, str]:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in (
        "trusted-keys.json",
        "redis-users.acl",
        "ui-users",
        "ui-access.yaml",
        "postgres-roles.sql",
        "object-store-identities.json",
    ):
        (keys / name).write_text(f"{name} content\n")
    values = {name: f"secret-{name.lower()}-{'x' * 24}" for name in SECRET_VARIABLES}
    values.update({name: f"host-{name.lower()}-{'y' * 24}" for name in HOST_SECRETS})
    return {**values, "KEYS_DIR": str(keys)}


def test_the_stack_validates_against_the_compose_spec_schema(settings):
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(generate(settings).document)


def test_every_secret_make_env_writes_is_recognised_as_one():
    for name in (*make_env.SECRETS, *SECRET_VARIABLES, "WANDB_API_KEY"):
        assert SECRET_VARIABLE.search(name), name
    for name in ("POSTGRES_USER", "OBJECT_STORE_BUCKET", "PLATFORM_NAME", "WEBSERVER_PORT"):
        assert not SECRET_VARIABLE.search(name), name


def test_no_secret_value_is_in_the_stack_file_only_in_its_secrets(settings):
    stack = generate({**settings, "WANDB_API_KEY": "wandb-key-" + "z" * 30})
    text = stack.text()
    secrets = {v for k, v in settings.items() if SECRET_VARIABLE.search(k)}
    secrets.add("wandb-key-" + "z" * 30)
    assert not [value for value in secrets if value in text]
    held = "\n".join(stack.secrets.values())
    # Every secret .env value a service uses reaches it as a Swarm secret (UI_PASSWORD is only
    # hashed into keys/ui-users, a config; the Redis passwords only into its ACL config).
    for name in ("POSTGRES_PASSWORD", "OBJECT_STORE_SECRET_ACCESS_KEY", "FLOWER_PASSWORD"):
        assert settings[name] in held, name
    for team in TEAMS:
        assert settings[f"WANDB_IO_SIGNING_KEY_{team.upper()}"] in held
        assert settings[f"REDIS_PASSWORD_{team.upper()}"] in held
        assert settings[f"POSTGRES_PASSWORD_{team.upper()}"] in held
        assert settings[f"OBJECT_STORE_SECRET_ACCESS_KEY_{team.upper()}"] in held


def test_services_get_secrets_as_files_and_dagster_services_read_them_at_start(settings):
    services = generate(settings).document["services"]
    daemon = services["daemon"]
    targets = {secret["target"] for secret in daemon["secrets"]}
    assert {"DAGSTER_POSTGRES_PASSWORD", "DAGSTER_CELERY_BROKER_URL"} <= targets
    assert not targets & set(daemon["environment"])
    assert daemon["entrypoint"] == ["dagster-platform-entrypoint", "--wait-for-instance", "--"]
    # Its health check opens the instance, so it reads the secrets too.
    assert daemon["healthcheck"]["test"][:3] == ["CMD", "dagster-platform-entrypoint", "--"]
    # The images that follow the <VARIABLE>_FILE convention get the file's path instead.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/POSTGRES_PASSWORD"
    )
    assert "AWS_SECRET_ACCESS_KEY_FILE" in services["object-store"]["environment"]
    assert "/run/secrets/REDISCLI_AUTH" in services["redis"]["healthcheck"]["test"][1]


def test_swarm_ignored_keys_are_gone_and_init_is_a_one_off_job(settings):
    services = generate(settings).document["services"]
    for name, service in services.items():
        assert not {"build", "depends_on", "restart"} & set(service), name
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["deploy"]["restart_policy"]["condition"] in ("any", "on-failure")
    assert services["init"]["deploy"]["mode"] == "replicated-job"
    assert "--wait-for-instance" not in services["init"]["entrypoint"]
    for name in ("webserver", "daemon", "platform-code", *(f"{t}-steps" for t in TEAMS)):
        assert "--wait-for-instance" in services[name]["entrypoint"], name


def test_each_team_worker_becomes_a_run_and_a_step_service_placed_by_its_labels(settings):
    services = generate(settings).document["services"]
    for team in TEAMS:
        assert f"{team}-worker" not in services
        for role in ("runs", "steps"):
            service = services[f"{team}-{role}"]
            assert service["command"] == ["dagster-team-worker", role]
            assert service["healthcheck"]["test"][-2:] == ["dagster-team-worker-healthcheck", role]
            assert service["deploy"]["placement"]["constraints"] == [
                f"node.labels.mlplatform.{team}.{role} == true"
            ]
        assert services[f"{team}-code"]["deploy"]["placement"]["constraints"] == [
            f"node.labels.mlplatform.{team}.runs == true"
        ]
    assert services["postgres"]["deploy"]["placement"]["constraints"] == [
        "node.labels.mlplatform.core == true"
    ]


def published(settings) -> dict[str, list]:
    services = generate(settings).document["services"]
    return {name: service["ports"] for name, service in services.items() if "ports" in service}


def test_only_the_ui_behind_its_login_is_published_unless_env_opts_in(settings):
    # Swarm cannot publish on loopback, where compose keeps Flower by default.
    assert published(settings) == {
        "ui": [{"target": 8080, "published": 3000, "protocol": "tcp", "mode": "host"}]
    }
    opted_in = published({**settings, "FLOWER_BIND": "0.0.0.0", "FLOWER_PORT": "5600"})
    assert opted_in["flower"] == [
        {"target": 5555, "published": 5600, "protocol": "tcp", "mode": "host"}
    ]
    assert published({**settings, "WEBSERVER_BIND": "127.0.0.1"}).keys() == {"ui"}


def test_the_webserver_listens_only_on_the_ui_network(settings):
    document = generate({**settings, "SWARM_UI_SUBNET": "10.9.8.0/24"}).document
    webserver = document["services"]["webserver"]
    assert webserver["command"][webserver["command"].index("--host") + 1] == "{address}"
    assert webserver["entrypoint"][1:3] == ["--address-in", "10.9.8.0/24"]
    assert document["networks"]["ui"]["internal"] is True
    assert document["networks"]["ui"]["ipam"]["config"] == [{"subnet": "10.9.8.0/24"}]


def test_the_code_gateway_listens_only_on_the_platform_network(settings):
    document = generate({**settings, "SWARM_PLATFORM_SUBNET": "10.9.7.0/24"}).document
    gateway = document["services"]["code-gateway"]
    assert gateway["environment"] == {"CODE_GATEWAY_SUBNET": "10.9.7.0/24"}
    assert document["networks"]["platform"] == {
        "driver": "overlay",
        "internal": True,
        "ipam": {"config": [{"subnet": "10.9.7.0/24"}]},
    }
    assert gateway["deploy"]["placement"]["constraints"] == ["node.labels.mlplatform.core == true"]
    # Each team's code network spans the gateway's node and the team's: an overlay.
    for team in ("bakery", "ml"):
        assert document["networks"][f"code-{team}"] == {"driver": "overlay", "internal": True}
        code = document["services"][f"{team}-code"]
        assert set(code["networks"]) == {"default", f"code-{team}"}
        assert code["command"][:3] == [
            "dagster-platform-entrypoint",
            "--address-toward",
            "code-gateway",
        ]
        assert f"code-{team}" in gateway["networks"]


def test_a_changed_config_or_secret_gets_a_new_name(settings, tmp_path):
    first = generate(settings)
    (tmp_path / "keys" / "trusted-keys.json").write_text("a new team's key\n")
    second = generate({**settings, "POSTGRES_PASSWORD": "rotated-" + "q" * 30})
    assert (
        first.document["configs"]["trusted-keys"]["name"]
        != (second.document["configs"]["trusted-keys"]["name"])
    )
    assert first.document["configs"]["workspace"] == second.document["configs"]["workspace"]
    assert set(first.secrets) != set(second.secrets)


def test_a_missing_secret_is_named_with_the_fix(settings):
    del settings["POSTGRES_PASSWORD"]
    with pytest.raises(RegistryError, match=r"POSTGRES_PASSWORD is not set.*make env"):
        generate(settings)


def test_interpolation_follows_compose_and_escapes_for_stack_deploy():
    values = {"SET": "v$1", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET:-d}-${EMPTY:-e}-${EMPTY-f}-$$HOME", values) == (
        "v$$1-d-e--$$HOME",
        {"SET", "UNSET", "EMPTY"},
    )
    with pytest.raises(RegistryError, match="UNSET is not set: fix it"):
        interpolate("${UNSET:?fix it}", values)


def test_the_stack_file_is_plain_yaml_that_says_it_is_generated(settings):
    text = generate(settings).text()
    assert text.startswith("# Generated by `make swarm-up`")
    assert not re.search(r"[&*]id\d+", text), "no YAML anchors: each service reads on its own"
    assert yaml.safe_load(text)["version"] == "3.9"


def test_redis_keeps_compose_s_memory_bound(settings):
    command = generate(settings).document["services"]["redis"]["command"]
    assert command[command.index("--maxmemory") + 1] == "512mb"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    bounded = generate({**settings, "REDIS_MAXMEMORY": "2gb"}).document["services"]["redis"]
    assert "2gb" in bounded["command"]
