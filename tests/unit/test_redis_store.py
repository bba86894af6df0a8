"""
The Redis rate-limit store: REDIS_URL, decisions equal to gcra.decide's,
expiry, the script reloaded when Redis forgot it, and what happens when
Redis is slow, down, and back (the policy, one log line each way).

These drive a fake connection with a Clock; the tests against a real
redis-server are tests/integration/test_redis_store_real.py.
"""

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from llmedge.limits.gcra import Limit, decide
from llmedge.limits.redis import KEY_PREFIX, SCRIPT_SHA, RedisStore
from llmedge.limits.store import IRateLimitStore, StoreUnavailable
from llmedge.redis_connection import RedisAddress, parse_url


# REDIS_URL
@pytest.mark.parametrize(
    "url,address",
    [
        ("redis://127.0.0.1:6379/0", RedisAddress()),
        ("redis://redis", RedisAddress(host="redis")),
        ("redis://:s3cret@redis:6380/2", RedisAddress("redis", 6380, 2, None, "s3cret")),
        ("redis://app:p%40ss@redis/1", RedisAddress("redis", 6379, 1, "app", "p@ss")),
        ("rediss://redis.example:6390", RedisAddress("redis.example", 6390, tls=True)),
        ("redis://[::1]:6379/0", RedisAddress(host="::1")),
        ("unix:///run/redis/redis.sock?db=3", RedisAddress(db=3, path="/run/redis/redis.sock")),
    ],
)
def test_redis_url_forms(url, address):
    assert parse_url(url) == address


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:6379", "http://redis:6379", "redis://", "redis://redis:port/0",
     "redis://redis/zero", "unix://", "redis://redis:99999/0", ""],
)
def test_bad_redis_url_is_refused(url):
    with pytest.raises(ValueError):
        parse_url(url)


def test_address_never_shows_the_password():
    address = parse_url("redis://app:hunter2@redis:6380/1")
    assert str(address) == "redis://redis:6380/1"
    with pytest.raises(ValueError) as caught:
        parse_url("redis://app:hunter2@redis/x")
    assert "hunter2" not in str(caught.value)


# A fake connection, driven by a Clock
class FakeRedis:
    """
    Answers each call with the Deferred a test puts in C{answers}, or one
    that never fires.
    """

    def __init__(self):
        self.answers = []
        self.calls = []
        self.disconnected = False

    def evalsha(self, sha, keys, args):
        self.calls.append(("evalsha", sha, keys, args))
        return self.answers.pop(0) if self.answers else Deferred()

    def ping(self):
        return succeed("PONG")

    def disconnect(self):
        self.disconnected = True
        return succeed(None)


def fake_store(fail_open=True):
    clock = task.Clock()
    clock.advance(1_800_000_000)
    redis = FakeRedis()
    events = []
    store = RedisStore(clock, RedisAddress(), timeout=0.25, fail_open=fail_open,
                       connect=lambda address, reply_timeout: redis)
    store._log = Logger(observer=events.append)
    store.startService()
    return store, redis, clock, events


LIMIT = Limit(per_minute=60, burst=5)


def result(d):
    box = []
    d.addBoth(box.append)
    assert box, "not fired"
    return box[0]


def messages(events):
    return [e["log_format"] for e in events]


def test_store_provides_the_interface():
    assert IRateLimitStore.providedBy(fake_store()[0])


def test_decision_is_gcra_decide_of_what_the_script_read():
    store, redis, _, _ = fake_store()
    redis.answers.append(succeed(["1800000000.5", "1800000003.25", 1]))
    decision = result(store.acquire("key:a", LIMIT))
    assert decision == decide(1800000003.25, 1800000000.5, LIMIT)
    (_, sha, keys, args), = redis.calls
    assert (sha, keys) == (SCRIPT_SHA, [KEY_PREFIX + "key:a"])
    assert [float(a) for a in args] == [1.0, 5.0, 1.0, 1e-6]


def test_slow_redis_decision_is_bounded_by_the_timeout_fail_open():
    store, _, clock, _ = fake_store()
    d = store.acquire("key:a", LIMIT)
    clock.advance(0.2)
    assert not d.called
    clock.advance(0.05)
    decision = result(d)
    # decided as for a full bucket
    assert decision == decide(None, clock.seconds(), LIMIT)
    assert decision.allowed and decision.remaining == 4


def test_slow_redis_fail_closed_fails_with_store_unavailable():
    store, _, clock, _ = fake_store(fail_open=False)
    d = store.acquire("key:a", LIMIT)
    clock.advance(0.25)
    failure = result(d)
    assert isinstance(failure, Failure) and failure.check(StoreUnavailable)


def test_unavailable_and_back_are_logged_once_each():
    store, redis, clock, events = fake_store()
    for _ in range(5):
        store.acquire("key:a", LIMIT)
        clock.advance(0.25)
    down = [e for e in events if "unavailable" in e["log_format"]]
    assert len(down) == 1 and down[0]["reason"] == "no answer within 0.25 s"
    assert "fail-open" in down[0]["policy"] and store.available is False
    for _ in range(3):
        redis.answers.append(succeed(["1800000001", None, 1]))
        result(store.acquire("key:a", LIMIT))
    assert len(events) == 2 and "is back" in events[1]["log_format"]
    assert store.available is True


def test_watchers_count_errors_and_see_availability():
    store, redis, clock, _ = fake_store()
    errors, states = [], []
    store.watch(lambda: errors.append(1), states.append)
    store.acquire("key:a", LIMIT)
    clock.advance(1)
    store.acquire("key:a", LIMIT)
    clock.advance(1)
    redis.answers.append(succeed(["1800000002", None, 1]))
    store.acquire("key:a", LIMIT)
    assert (len(errors), states) == (2, [True, False, True])


def test_cost_beyond_the_burst_is_refused_before_asking_redis():
    store, redis, _, _ = fake_store()
    with pytest.raises(ValueError):
        store.acquire("key:a", LIMIT, cost=6)
    assert redis.calls == []


def test_stopping_the_store_closes_the_connection():
    store, redis, _, _ = fake_store()
    store.stopService()
    assert redis.disconnected
