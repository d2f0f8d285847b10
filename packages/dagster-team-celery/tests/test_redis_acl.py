"""Each team's Redis user against a real Redis loaded with the platform's ACL file: what a
process holding team ml's credentials tries against team bakery, and what Flower may do."""

import inspect
import shutil
import threading

import kombu
import pytest
import redis
from celery import Celery
from celery_team import CeleryTeam  # noqa: F401  (the conftest's import path)
from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis
from kombu.utils.url import url_to_parts
from redis.connection import parse_url
from throwaway_redis import RedisServer

from dagster_team_celery.control import team_app
from dagster_team_celery.deploy import redis_acl
from dagster_team_celery.deploy.flower_events import EVERY_TEAM, EveryTeamChannel, every_team_broker
from dagster_team_celery.settings import key_prefix

PASSWORDS = {"bakery": "bakery-secret-1", "ml": "ml-secret-2"}
FLOWER_PASSWORD = "flower-secret-3"
LAUNCHER_PASSWORD = "launcher-secret-4"
BAKERY = key_prefix("bakery")
REPLY_QUEUE = "00000000-0000-0000-0000-000000000000.reply.celery.pidbox"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    data_dir = tmp_path_factory.mktemp("acl-redis")
    acl_file = data_dir / "users.acl"
    acl_file.write_text(redis_acl.acl_file("pw", FLOWER_PASSWORD, LAUNCHER_PASSWORD, PASSWORDS))
    instance = RedisServer(server, data_dir, acl_file=acl_file)
    instance.start()
    admin = redis.Redis.from_url(instance.url)
    admin.lpush(f"{BAKERY}bakery", b"a bakery step")
    admin.set(f"{BAKERY}celery-task-meta-1234", b'{"status": "SUCCESS"}')
    yield instance
    instance.stop()


def url(acl_redis: RedisServer, user: str, password: str, db: int = 0) -> str:
    return redis_acl.redis_url(user, password, "127.0.0.1", acl_redis.port, db)


def as_team(acl_redis: RedisServer, team: str) -> redis.Redis:
    return redis.Redis.from_url(url(acl_redis, redis_acl.team_user(team), PASSWORDS[team]))


def as_flower(acl_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(url(acl_redis, redis_acl.FLOWER_USER, FLOWER_PASSWORD))


ML_AGAINST_BAKERY = {
    "push a task onto bakery's queue": lambda r: r.lpush(f"{BAKERY}bakery", b"evil"),
    "take bakery's queued task": lambda r: r.rpop(f"{BAKERY}bakery"),
    "read bakery's queued tasks": lambda r: r.lrange(f"{BAKERY}bakery", 0, -1),
    "read bakery's result": lambda r: r.get(f"{BAKERY}celery-task-meta-1234"),
    "delete bakery's result": lambda r: r.delete(f"{BAKERY}celery-task-meta-1234"),
    "overwrite bakery's result": lambda r: r.set(f"{BAKERY}celery-task-meta-1234", b"x"),
    "revoke bakery's steps": lambda r: r.publish(f"{BAKERY}/0.celery.pidbox", b"revoke"),
    "list every key": lambda r: r.scan(0),
    "list keys by pattern": lambda r: r.keys("*"),
    "flush the database": lambda r: r.flushdb(),
    "list every channel": lambda r: r.pubsub_channels(),
    "read the server's config": lambda r: r.config_get("*"),
}


@pytest.mark.parametrize("attack", ML_AGAINST_BAKERY, ids=list(ML_AGAINST_BAKERY))
def test_the_ml_user_cannot_touch_the_bakerys_keys(acl_redis, attack):
    with pytest.raises(redis.exceptions.NoPermissionError):
        ML_AGAINST_BAKERY[attack](as_team(acl_redis, "ml"))
    admin = redis.Redis.from_url(acl_redis.url)
    assert admin.lrange(f"{BAKERY}bakery", 0, -1) == [b"a bakery step"]
    assert admin.get(f"{BAKERY}celery-task-meta-1234") == b'{"status": "SUCCESS"}'


@pytest.mark.parametrize(
    "pattern",
    [f"{BAKERY}*", f"{BAKERY}/0.celeryev/*", f"{EVERY_TEAM}/0.celeryev/*", "*"],
)
def test_the_ml_user_cannot_listen_to_the_bakerys_channels(acl_redis, pattern):
    listener = as_team(acl_redis, "ml").pubsub()
    with pytest.raises(redis.exceptions.NoPermissionError):
        listener.psubscribe(pattern)
        listener.get_message(timeout=2)


def test_the_ml_user_cannot_wait_on_a_bakery_result(acl_redis):
    listener = as_team(acl_redis, "ml").pubsub()
    with pytest.raises(redis.exceptions.NoPermissionError):
        listener.subscribe(f"{BAKERY}celery-task-meta-1234")
        listener.get_message(timeout=2)


def test_a_celery_app_with_ml_credentials_cannot_send_to_the_bakerys_queue(acl_redis):
    # The whole client as a hostile team would configure it: bakery's prefix, ml's user.
    ml_url = url(acl_redis, redis_acl.team_user("ml"), PASSWORDS["ml"])
    app = team_app("bakery", broker=ml_url, backend=ml_url.replace("/0", "/1"))
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "max_retries": 0,
    }
    try:
        with pytest.raises((OperationalError, redis.exceptions.NoPermissionError)):
            app.send_task("execute_plan", queue="bakery", retry=False)
    finally:
        app.close()
    admin = redis.Redis.from_url(acl_redis.url)
    assert admin.llen(f"{BAKERY}bakery") == 1


def test_a_team_reaches_its_own_keys_and_channels(acl_redis):
    bakery = as_team(acl_redis, "bakery")
    bakery.lpush(f"{BAKERY}probe", b"ok")
    assert bakery.rpop(f"{BAKERY}probe") == b"ok"
    listener = bakery.pubsub()
    listener.psubscribe(f"{BAKERY}/0.celery.pidbox", f"{BAKERY}/0.celeryev/worker.*")
    listener.subscribe(f"{BAKERY}celery-task-meta-1234")
    for _ in range(3):
        assert listener.get_message(timeout=2)["type"] in ("psubscribe", "subscribe")


def as_launcher(acl_redis: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis.from_url(url(acl_redis, redis_acl.LAUNCHER_USER, LAUNCHER_PASSWORD, db))


def test_the_launcher_sends_to_any_teams_run_queue_and_reads_its_results(acl_redis):
    launcher = as_launcher(acl_redis)
    for team in PASSWORDS:
        prefix = key_prefix(team)
        launcher.lpush(f"{prefix}{team}-runs", b"a run")
        assert launcher.rpop(f"{prefix}{team}-runs") == b"a run"
        launcher.publish(f"{prefix}/0.celery.pidbox", b"inspect active")
    assert launcher.get(f"{BAKERY}celery-task-meta-1234") == b'{"status": "SUCCESS"}'
    listener = launcher.pubsub()
    listener.subscribe(f"{BAKERY}celery-task-meta-1234")
    assert listener.get_message(timeout=2)["type"] == "subscribe"


@pytest.mark.parametrize(
    "attack",
    [
        lambda launcher: launcher.set("_kombu.binding.celery", b"x"),
        lambda launcher: launcher.get("celeryev.flower"),
        lambda launcher: launcher.publish("/0.celery.pidbox", b"shutdown"),
        lambda launcher: launcher.keys("*"),
        lambda launcher: launcher.scan(),
        lambda launcher: launcher.flushall(),
        lambda launcher: launcher.config_get("*"),
        lambda launcher: launcher.acl_list(),
    ],
    ids=[
        "unprefixed key",
        "flowers key",
        "unprefixed channel",
        "KEYS",
        "SCAN",
        "FLUSHALL",
        "CONFIG",
        "ACL",
    ],
)
def test_the_launcher_reaches_nothing_outside_the_teams_keys(acl_redis, attack):
    with pytest.raises(redis.exceptions.NoPermissionError):
        attack(as_launcher(acl_redis))


def test_flower_hears_every_teams_events_and_touches_no_team_key(acl_redis):
    flower = as_flower(acl_redis)
    listener = flower.pubsub()
    listener.psubscribe(f"{EVERY_TEAM}/0.celeryev/*")
    assert listener.get_message(timeout=2)["type"] == "psubscribe"
    as_team(acl_redis, "bakery").publish(f"{BAKERY}/0.celeryev/worker.heartbeat", b"{}")
    heard = listener.get_message(timeout=2)
    assert heard["channel"] == f"{BAKERY}/0.celeryev/worker.heartbeat".encode()
    for attack in (
        lambda: flower.lrange(f"{BAKERY}bakery", 0, -1),
        lambda: flower.get(f"{BAKERY}celery-task-meta-1234"),
        lambda: flower.publish(f"{BAKERY}/0.celery.pidbox", b"revoke"),
        lambda: flower.lrange(
            f"{BAKERY}00000000-0000-0000-0000-000000000000.reply.celery.pidbox", 0, -1
        ),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attack()


def test_the_acl_file_holds_no_password():
    text = redis_acl.acl_file("admin-secret", FLOWER_PASSWORD, LAUNCHER_PASSWORD, PASSWORDS)
    for secret in ("admin-secret", FLOWER_PASSWORD, LAUNCHER_PASSWORD, *PASSWORDS.values()):
        assert secret not in text
    assert text.count(" on #") == 3 + len(PASSWORDS)


HOSTILE_TEAM_NAMES = [
    "Bakery",
    "a b",
    "x\non",
    "bakery\n",
    "../x",
    "",
    "bak*",
    "bak?ry",
    "bak[e]ry",
    "*",
    "bakery_2",
    "b",
    "a" * 31,
]


@pytest.mark.parametrize("team", HOSTILE_TEAM_NAMES)
def test_a_hostile_team_name_is_refused(team):
    for build in (
        lambda: redis_acl.team_rule(team, "secret"),
        lambda: redis_acl.team_user(team),
        lambda: redis_acl.acl_file(
            "pw", FLOWER_PASSWORD, LAUNCHER_PASSWORD, {**PASSWORDS, team: "secret"}
        ),
    ):
        with pytest.raises(ValueError, match="not a team name") as refused:
            build()
        assert repr(team) in str(refused.value)
        assert redis_acl.TEAM_NAME_PATTERN.pattern in str(refused.value)


def test_a_team_named_with_a_glob_gets_no_user_that_reaches_the_bakerys_keys():
    # As a glob, ~team:bak*:* would match team:bakery:<anything>.
    with pytest.raises(ValueError, match=r"'bak\*' is not a team name"):
        redis_acl.acl_file(
            "pw", FLOWER_PASSWORD, LAUNCHER_PASSWORD, {"bakery": "bakery-pw", "bak*": "evil-pw"}
        )


@pytest.mark.parametrize("team", ["bakery", "ml", "team2", "a" * 30])
def test_a_registry_team_name_gets_a_user(team):
    assert redis_acl.team_user(team) == f"team_{team}"
    assert f" ~team:{team}:* " in redis_acl.team_rule(team, "secret")


def test_a_redis_url_quotes_its_credentials():
    password = "p@ss:w/rd%#?"
    quoted = redis_acl.redis_url("team_bakery", password, "127.0.0.1", 6379, 1)
    assert parse_url(quoted) == {
        "username": "team_bakery",
        "password": password,
        "host": "127.0.0.1",
        "port": 6379,
        "db": 1,
    }
    parts = url_to_parts(quoted)  # how Celery's broker and result backend read it
    assert (parts.username, parts.password, parts.port, parts.path) == (
        "team_bakery",
        password,
        6379,
        "1",
    )
    # The generated (hex) passwords come out as they are; without db, a base for /<db>.
    assert redis_acl.redis_url("team_ml", "0a1b", "redis", "6379", 0) == (
        "redis://team_ml:0a1b@redis:6379/0"
    )
    assert redis_acl.redis_url("", "pw", "127.0.0.1", 6379) == "redis://:pw@127.0.0.1:6379"


def test_a_password_with_whitespace_is_refused():
    with pytest.raises(ValueError, match="whitespace"):
        redis_acl.team_rule("bakery", "two words")


# The private methods of kombu's Redis channel that every_team_events.py overrides, as the
# pinned kombu (pyproject.toml) defines them.
KOMBU_OVERRIDES = {
    "_get_subscribe_topics": ["self", "queue"],
    "_handle_message": ["self", "client", "r"],
}


@pytest.mark.parametrize("name", KOMBU_OVERRIDES)
def test_the_kombu_methods_every_team_events_overrides_are_as_it_expects(name):
    original = getattr(kombu_redis.Channel, name, None)
    assert original is not None, f"kombu {kombu.__version__} has no Channel.{name}"
    assert list(inspect.signature(original).parameters) == KOMBU_OVERRIDES[name]
    assert name in vars(EveryTeamChannel)


def test_flowers_channel_subscribes_to_every_team_and_strips_the_team_prefix(acl_redis):
    flower_url = url(acl_redis, redis_acl.FLOWER_USER, FLOWER_PASSWORD)
    with Connection(every_team_broker(flower_url)) as connection:
        channel = connection.default_channel
        assert isinstance(channel, EveryTeamChannel)
        # As Celery's event receiver binds on Redis: a fanout exchange, events by routing key.
        events = Exchange("celeryev", type="fanout")
        Queue("celeryev.probe", events, routing_key="worker.#", auto_delete=True)(channel).declare()
        plain = kombu_redis.Channel._get_subscribe_topics(channel, "celeryev.probe")
        assert plain and all(topic.startswith("/0.celeryev") for topic in plain)
        topics = channel._get_subscribe_topics("celeryev.probe")
        assert topics == [EVERY_TEAM + topic for topic in plain]
        heartbeat = f"{BAKERY}/0.celeryev/worker.heartbeat".encode()
        payload = channel._handle_message(
            channel.subclient, [b"pmessage", topics[0].encode(), heartbeat, b"{}"]
        )
        assert payload["channel"] == "/0.celeryev/worker.heartbeat"
        assert payload["pattern"] == topics[0].encode()
        assert payload["data"] == b"{}"


def test_flowers_app_receives_a_teams_events_as_celery_events(acl_redis):
    flower = Celery("flower", broker=every_team_broker(url(acl_redis, "flower", FLOWER_PASSWORD)))
    heard: list[dict] = []
    errors: list[BaseException] = []

    def listen() -> None:
        try:
            with flower.connection() as connection:

                def on_event(event: dict) -> None:
                    heard.append(event)
                    receiver.should_stop = True

                receiver = flower.events.Receiver(connection, handlers={"*": on_event})
                receiver.capture(limit=None, timeout=10, wakeup=True)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    bakery_url = url(acl_redis, redis_acl.team_user("bakery"), PASSWORDS["bakery"])
    bakery = team_app("bakery", broker=bakery_url, backend=bakery_url)
    deadline = 10
    while not heard and deadline and not errors:
        with bakery.events.default_dispatcher(hostname="bakery@probe") as dispatcher:
            dispatcher.send("worker-heartbeat")
        listener.join(1)
        deadline -= 1
    assert not errors, errors
    assert heard and heard[0]["type"] == "worker-heartbeat"
    assert heard[0]["hostname"] == "bakery@probe"
