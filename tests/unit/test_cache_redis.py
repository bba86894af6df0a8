"""
The Redis response-cache store: the stored format (a marker byte, zlib for
large values), expiry done by Redis, corrupt values read as absent, and
what happens when Redis is slow, down and back (CacheUnavailable, at once
when no connection is up; one log line each way).

These drive a fake connection with a Clock; the same store against a real
redis-server is tests/integration/test_cache_redis_real.py.
"""

import zlib
from types import SimpleNamespace

import pytest
import txredisapi
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from llmedge.cache.redis import (
    KEY_PREFIX,
    RAW,
    ZLIB,
    RedisCache,
    decode,
    encode,
)
from llmedge.cache.store import CacheUnavailable, ICacheStore
from llmedge.redis_connection import RedisAddress

LARGE = b'{"choices":[{"message":{"content":"' + b"cached answer " * 400 + b'"}}]}'


# The stored format
def test_small_value_is_stored_raw_behind_its_marker():
    assert encode(b"hello") == RAW + b"hello"
    assert decode(encode(b"hello")) == b"hello"


def test_value_over_the_threshold_is_stored_compressed():
    stored = encode(LARGE)
    assert stored[:1] == ZLIB and len(stored) < len(LARGE) / 5
    assert decode(stored) == LARGE


def test_threshold_is_a_parameter():
    assert encode(b"a" * 100, compress_over=50)[:1] == ZLIB
    assert encode(b"a" * 100, compress_over=100)[:1] == RAW


def test_value_compression_does_not_shrink_is_stored_raw():
    noise = zlib.compress(bytes(range(256)) * 16, 9)  # already compressed
    assert encode(noise, compress_over=10) == RAW + noise


def test_empty_value_round_trips():
    assert decode(encode(b"")) == b""


@pytest.mark.parametrize(
    "stored",
    [b"", b"x" + b"whatever", ZLIB + b"not zlib at all",
     ZLIB + zlib.compress(b"truncated " * 100)[:-10]],
)
def test_what_encode_did_not_write_does_not_decode(stored):
    with pytest.raises(ValueError):
        decode(stored)


def test_value_inflating_past_the_bound_does_not_decode():
    bomb = ZLIB + zlib.compress(b"\0" * 10_000)
    assert decode(bomb, max_value=10_000) == b"\0" * 10_000
    with pytest.raises(ValueError):
        decode(bomb, max_value=9_999)


# A fake connection, driven by a Clock
class FakeRedis:
    """
    Answers each call with the Deferred a test puts in C{answers}, or one
    that never fires; C{_factory.size} says whether a connection is up, as
    txredisapi's does.
    """

    def __init__(self):
        self.answers = []
        self.calls = []
        self.disconnected = False
        self._factory = SimpleNamespace(size=1)

    def _answer(self, *call):
        self.calls.append(call)
        return self.answers.pop(0) if self.answers else Deferred()

    def get(self, key):
        return self._answer("get", key)

    def set(self, key, value, pexpire=None):
        return self._answer("set", key, value, pexpire)

    def ping(self):
        return succeed("PONG")

    def disconnect(self):
        self.disconnected = True
        return succeed(None)


def fake_cache(**kwargs):
    clock = task.Clock()
    redis = FakeRedis()
    events = []
    cache = RedisCache(clock, RedisAddress(), timeout=0.25,
                       connect=lambda address, reply_timeout: redis, **kwargs)
    cache._log = Logger(observer=events.append)
    cache.startService()
    return cache, redis, clock, events


def result(d):
    box = []
    d.addBoth(box.append)
    assert box, "not fired"
    return box[0]


def is_unavailable(outcome):
    return isinstance(outcome, Failure) and outcome.check(CacheUnavailable) is not None


def test_cache_provides_the_interface():
    assert ICacheStore.providedBy(fake_cache()[0])


def test_put_is_set_under_the_prefix_with_expiry_in_milliseconds():
    cache, redis, _, _ = fake_cache()
    redis.answers.append(succeed("OK"))
    assert result(cache.put("ab12", b"value", 3600)) is None
    assert redis.calls == [("set", KEY_PREFIX + "ab12", RAW + b"value", 3_600_000)]


def test_ttl_below_a_millisecond_is_still_an_expiry():
    cache, redis, _, _ = fake_cache()
    redis.answers.append(succeed("OK"))
    result(cache.put("ab12", b"value", 0.0001))
    assert redis.calls[0][3] == 1


def test_non_positive_ttl_stores_nothing():
    cache, redis, _, _ = fake_cache()
    assert result(cache.put("ab12", b"value", 0)) is None
    assert result(cache.put("ab12", b"value", -5)) is None
    assert redis.calls == []


def test_get_decodes_what_redis_holds():
    cache, redis, _, _ = fake_cache()
    redis.answers.append(succeed(encode(LARGE)))
    assert result(cache.get("ab12")) == LARGE
    assert redis.calls == [("get", KEY_PREFIX + "ab12")]


def test_value_handed_back_as_text_is_the_same_bytes():
    # txredisapi decodes replies that are valid UTF-8
    cache, redis, _, _ = fake_cache()
    redis.answers.append(succeed("r{\"é\": 1}"))
    assert result(cache.get("ab12")) == '{"é": 1}'.encode()


def test_absent_key_is_none():
    cache, redis, _, _ = fake_cache()
    redis.answers.append(succeed(None))
    assert result(cache.get("ab12")) is None


def test_corrupt_values_are_absent_and_logged_once():
    cache, redis, _, events = fake_cache()
    for stored in (b"?junk", ZLIB + b"junk", b"?more junk"):
        redis.answers.append(succeed(stored))
        assert result(cache.get("ab12")) is None
    assert len(events) == 1 and "does not decode" in events[0]["log_format"]
    assert cache.stats()["corrupt"] == 3
    assert cache.available


def test_slow_redis_fails_with_cache_unavailable_within_the_timeout():
    cache, _, clock, _ = fake_cache()
    d = cache.get("ab12")
    clock.advance(0.2)
    assert not d.called
    clock.advance(0.05)
    assert is_unavailable(result(d))


def test_redis_error_fails_with_cache_unavailable():
    cache, redis, _, _ = fake_cache()
    redis.answers.append(fail(txredisapi.ResponseError("OOM command not allowed")))
    assert is_unavailable(result(cache.put("ab12", b"v", 10)))


def test_no_connection_fails_at_once_after_start_up():
    cache, redis, _, events = fake_cache()
    redis._factory.size = 0
    assert is_unavailable(result(cache.get("ab12")))
    assert redis.calls == []
    assert events[0]["reason"] == "not connected"


def test_first_connection_is_waited_for_at_start_up():
    clock = task.Clock()
    redis = FakeRedis()
    redis._factory.size = 0
    redis.ping = Deferred  # no connection yet: the probe waits
    cache = RedisCache(clock, RedisAddress(), timeout=0.25,
                       connect=lambda address, reply_timeout: redis)
    cache._log = Logger(observer=lambda event: None)
    cache.startService()
    redis.answers.append(succeed(RAW + b"v"))
    assert result(cache.get("ab12")) == b"v"


def test_unavailable_and_back_are_logged_once_each():
    cache, redis, clock, events = fake_cache()
    for _ in range(3):
        cache.get("ab12")
        clock.advance(0.25)
    redis._factory.size = 0
    for _ in range(3):
        assert is_unavailable(result(cache.get("ab12")))
    assert len(events) == 1 and "unavailable" in events[0]["log_format"]
    assert events[0]["reason"] == "no answer within 0.25 s"
    assert cache.available is False
    redis._factory.size = 1
    for _ in range(3):
        redis.answers.append(succeed(None))
        result(cache.get("ab12"))
    assert len(events) == 2 and "is back" in events[1]["log_format"]
    assert cache.available is True


def test_stats_are_zeros_for_what_redis_holds_and_count_unavailable_calls():
    cache, redis, clock, _ = fake_cache()
    assert cache.stats() == {"bytes": 0, "entries": 0, "evictions": 0,
                             "unavailable": 0, "corrupt": 0}
    cache.get("ab12")
    clock.advance(1)
    redis._factory.size = 0
    cache.put("ab12", b"v", 10)
    assert cache.stats()["unavailable"] == 2


def test_stopping_the_cache_closes_the_connection():
    cache, redis, _, _ = fake_cache()
    cache.stopService()
    assert redis.disconnected
    assert is_unavailable(result(cache.get("ab12")))
