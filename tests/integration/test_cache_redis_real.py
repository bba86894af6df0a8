"""
The Redis response-cache store against a private redis-server
(tests/conftest.py) on the real reactor, as test_redis_store_real.py does
for the rate-limit store: expiry by Redis, compression as Redis holds it,
corrupt values, Redis down and back. Skipped when redis-server is missing,
unless LLMEDGE_REQUIRE_TOOLS=1.
"""

import pytest
import pytest_twisted
import txredisapi
from twisted.logger import Logger

from llmedge.cache.redis import KEY_PREFIX, ZLIB, RedisCache
from llmedge.cache.store import CacheUnavailable
from llmedge.redis_connection import parse_url
from llmedge.testing import polled
from tests.unit.test_cache_redis import LARGE


# Against a real redis-server, on the real reactor
def real_cache(url, timeout=1.0, **kwargs):
    from twisted.internet import reactor

    cache = RedisCache(reactor, parse_url(url), timeout=timeout, **kwargs)
    events = []
    cache._log = Logger(observer=events.append)
    cache.startService()
    return cache, events


@pytest.fixture
def raw(redis_server):
    """
    A plain connection to the test's redis-server, replying bytes.
    """
    handler = pytest_twisted.blockon(txredisapi.Connection(
        "127.0.0.1", redis_server.port, convertNumbers=False, charset=None))
    yield handler
    pytest_twisted.blockon(handler.disconnect())


@pytest_twisted.inlineCallbacks
def test_real_put_then_get(redis_server):
    cache, events = real_cache(redis_server.url)
    try:
        assert (yield cache.get("ab12")) is None
        yield cache.put("ab12", b'{"answer": 42}', 60)
        assert (yield cache.get("ab12")) == b'{"answer": 42}'
        assert events == []
    finally:
        yield cache.stopService()


@pytest_twisted.inlineCallbacks
def test_real_entry_is_given_to_redis_with_its_expiry(redis_server, raw):
    # Expiry itself is Redis's clock, not ours: what llmedge owes is the
    # PX on every entry (an absent key reading as None is a unit test).
    cache, _ = real_cache(redis_server.url)
    try:
        yield cache.put("ab12", b"short-lived", 0.2)
        assert 0 < (yield raw.execute_command("PTTL", KEY_PREFIX + "ab12")) <= 200
        assert (yield cache.get("ab12")) == b"short-lived"
    finally:
        yield cache.stopService()


@pytest_twisted.inlineCallbacks
def test_real_large_value_round_trips_and_redis_holds_it_compressed(redis_server, raw):
    cache, _ = real_cache(redis_server.url)
    try:
        yield cache.put("ab12", LARGE, 60)
        held = yield raw.get(KEY_PREFIX + "ab12")
        assert held[:1] == ZLIB and len(held) < len(LARGE) / 5
        assert (yield cache.get("ab12")) == LARGE
        binary = bytes(range(256)) * 16  # not valid UTF-8, compressible
        yield cache.put("cd34", binary, 60)
        assert (yield cache.get("cd34")) == binary
    finally:
        yield cache.stopService()


@pytest_twisted.inlineCallbacks
def test_real_corrupt_value_reads_as_none(redis_server, raw):
    cache, events = real_cache(redis_server.url)
    try:
        yield raw.set(KEY_PREFIX + "ab12", ZLIB + b"\xff\xfe not zlib")
        assert (yield cache.get("ab12")) is None
        assert len(events) == 1 and cache.available
    finally:
        yield cache.stopService()


@pytest_twisted.inlineCallbacks
def test_real_redis_down_then_back(redis_server):
    from twisted.internet import reactor

    cache, events = real_cache(redis_server.url, timeout=0.2)
    try:
        yield cache.put("ab12", b"before", 60)
        redis_server.stop()
        # Until the client has seen the connection go, a call takes at most
        # the timeout; from then on it fails at once.
        deadline = reactor.seconds() + 5
        while True:
            started = reactor.seconds()
            d = cache.get("ab12")
            fired_at_once = d.called
            try:
                yield d
            except CacheUnavailable:
                pass
            else:
                raise AssertionError("a get succeeded with Redis down")
            assert reactor.seconds() - started < 0.2 + 0.5
            if fired_at_once:
                break
            assert reactor.seconds() < deadline, "calls never failed at once"
        assert cache.available is False
        redis_server.start()  # same port, empty

        def back():
            # each get lets the client try again; while down, it fails at once
            return cache.get("ab12").addErrback(lambda f: f.trap(CacheUnavailable)).addCallback(
                lambda _: cache.available)

        yield polled(reactor, back, timeout=15, interval=0.1, what="the cache reconnecting")
        yield cache.put("ab12", b"after", 60)
        assert (yield cache.get("ab12")) == b"after"
        formats = [e["log_format"] for e in events]
        assert [("is unavailable" in m, "is back" in m) for m in formats] == [
            (True, False), (False, True)]
    finally:
        yield cache.stopService()
