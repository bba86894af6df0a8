"""
The Redis rate-limit store against a real, private redis-server
(tests/conftest.py) on the real reactor: decisions equal to gcra.decide's,
expiry, the script loaded again when Redis forgot it, a server that never
answers, recovery when Redis comes back, settling reservations.
"""

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import protocol, reactor, task
from twisted.logger import Logger

from llmedge.limits.gcra import Limit, decide
from llmedge.limits.redis import KEY_PREFIX, SCRIPT_SHA, RedisStore
from llmedge.redis_connection import parse_url
from llmedge.limits.store import StoreUnavailable
from llmedge.testing import polled
from tests.unit.test_redis_store import messages


# Against a real redis-server
def real_store(url, timeout=1.0, fail_open=True):
    store = RedisStore(reactor, parse_url(url), timeout=timeout, fail_open=fail_open)
    events = []
    store._log = Logger(observer=events.append)
    store.startService()
    return store, events


class Recording:
    """
    The store's real connection, keeping every reply of the script.
    """

    def __init__(self, handler):
        self.handler = handler
        self.replies = []

    def evalsha(self, *args):
        return self.handler.evalsha(*args).addCallback(self._keep)

    def _keep(self, reply):
        self.replies.append(reply)
        return reply

    def __getattr__(self, name):
        return getattr(self.handler, name)


@pytest.fixture
def client(redis_server):
    handler = pytest_twisted.blockon(
        txredisapi.Connection("127.0.0.1", redis_server.port, convertNumbers=False))
    yield handler
    pytest_twisted.blockon(handler.disconnect())


def sleep(seconds):
    """
    Real time passing on Redis's own clock (its C{TIME}), which decides
    the buckets and which no L{Clock} drives.
    """
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def test_decisions_equal_gcra_decide_on_a_sequence(redis_server, client):
    from llmedge.limits import redis as module

    recording = []

    def connect(address, reply_timeout):
        recording.append(Recording(module.connect(address, reply_timeout)))
        return recording[0]

    store = RedisStore(reactor, parse_url(redis_server.url), timeout=2.0, connect=connect)
    store.startService()
    # 10 ms a request, 4 at once: a sequence that admits, refuses and refills
    limit = Limit(per_minute=6000, burst=4)
    try:
        model = None
        admitted = 0
        for i in range(40):
            decision = yield store.acquire("key:seq", limit)
            now, stored, allowed = recording[0].replies[-1]
            expected = decide(model, float(now), limit)
            assert decision == expected
            assert bool(allowed) == expected.allowed
            if expected.allowed:
                admitted += 1
                model = expected.tat
                assert float((yield client.get(KEY_PREFIX + "key:seq"))) == expected.tat
            # Redis decides by its own clock (TIME), which no Clock drives:
            # real time has to pass for the bucket to refill between calls.
            yield sleep(0.003 if i % 3 else 0.0)
        assert 4 < admitted < 40
        assert store.available
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_key_expires_when_the_bucket_is_full_again(redis_server, client):
    store, _ = real_store(redis_server.url)
    limit = Limit(per_minute=60, burst=3)  # a second a request
    key = KEY_PREFIX + "key:ttl"
    try:
        yield store.acquire("key:ttl", limit)
        first = yield client.execute_command("PTTL", key)
        assert 900 < first <= 1000
        yield store.acquire("key:ttl", limit)
        yield store.acquire("key:ttl", limit)
        full = yield client.execute_command("PTTL", key)
        assert 2900 < full <= 3000
        denied = yield store.acquire("key:ttl", limit)
        assert not denied.allowed and denied.remaining == 0
        assert (yield client.execute_command("PTTL", key)) <= full  # a refusal writes nothing
        assert denied.retry_after == pytest.approx(1.0, abs=0.1)
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_script_is_loaded_again_after_script_flush(redis_server, client):
    store, events = real_store(redis_server.url)
    limit = Limit(per_minute=60, burst=2)
    try:
        assert (yield store.acquire("key:f", limit)).remaining == 1
        yield client.script_flush()
        assert not (yield client.script_exists(SCRIPT_SHA))
        decision = yield store.acquire("key:f", limit)
        assert (decision.allowed, decision.remaining) == (True, 0)
        assert (yield client.script_exists(SCRIPT_SHA))
        assert store.available and events == []
    finally:
        yield store.stopService()


class Silent(protocol.Protocol):
    def dataReceived(self, data):
        pass


@pytest_twisted.inlineCallbacks
def test_server_that_never_answers_is_timed_out_by_the_policy():
    factory = protocol.Factory.forProtocol(Silent)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    url = f"redis://127.0.0.1:{port.getHost().port}/0"
    opened, closed = real_store(url, timeout=0.1), real_store(url, timeout=0.1, fail_open=False)
    try:
        limit = Limit(per_minute=60, burst=2)
        started = reactor.seconds()
        decisions = []
        for _ in range(4):  # beyond the burst: not limited while Redis is silent
            decisions.append((yield opened[0].acquire("key:s", limit)))
        assert all(d.allowed and d.remaining == 1 for d in decisions)
        failure = None
        try:
            yield closed[0].acquire("key:s", limit)
        except StoreUnavailable as e:
            failure = e
        assert failure is not None
        assert reactor.seconds() - started < 5 * 0.1 + 2
        for store, events in (opened, closed):
            assert store.available is False
            assert len([e for e in events if "unavailable" in e["log_format"]]) == 1
    finally:
        yield opened[0].stopService()
        yield closed[0].stopService()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_limits_resume_when_redis_comes_back(redis_server):
    store, events = real_store(redis_server.url, timeout=0.2)
    limit = Limit(per_minute=1, burst=1)
    try:
        assert (yield store.acquire("key:r", limit)).allowed
        assert not (yield store.acquire("key:r", limit)).allowed
        redis_server.stop()
        for _ in range(3):
            assert (yield store.acquire("key:r", limit)).allowed  # fail-open
        assert store.available is False
        redis_server.start()  # same port, empty
        yield polled(reactor, lambda: store.acquire("key:r", limit).addCallback(
            lambda _: store.available), timeout=15, interval=0.1, what="the store reconnecting")
        assert not (yield store.acquire("key:r", limit)).allowed  # limited again
        assert [("is unavailable" in m, "is back:" in m) for m in messages(events)] == [
            (True, False), (False, True)]
    finally:
        yield store.stopService()


@pytest_twisted.inlineCallbacks
def test_stopping_closes_the_connection_to_redis(redis_server, client):
    store, _ = real_store(redis_server.url)
    yield store.acquire("key:c", Limit(per_minute=60, burst=2))
    clients = yield client.execute_command("CLIENT", "LIST")
    assert len(clients.strip().splitlines()) == 2
    yield store.stopService()
    # Redis sees the disconnect on its own schedule: ask until it has
    yield polled(reactor, lambda: client.execute_command("CLIENT", "LIST").addCallback(
        lambda clients: len(clients.strip().splitlines()) == 1), timeout=5,
        what="redis seeing the store's connection closed")


@pytest_twisted.inlineCallbacks
def test_adjust_settles_a_reservation_in_redis(redis_server, client):
    """
    Tokens reserved and then given back (or charged) in Redis, as the
    memory store does (gcra.adjusted); the script is loaded again when
    missing, and a refund never leaves a bucket fuller than full.
    """
    store, events = real_store(redis_server.url)
    limit = Limit(per_minute=600, burst=600)
    key = KEY_PREFIX + "tokens:t"
    try:
        assert (yield store.acquire("tokens:t", limit, 500)).allowed
        assert not (yield store.acquire("tokens:t", limit, 500)).allowed
        yield client.script_flush()
        yield store.adjust("tokens:t", limit, -450)
        assert (yield store.acquire("tokens:t", limit, 500)).allowed
        yield store.adjust("tokens:t", limit, -10_000)
        assert (yield client.exists(key)) == 0
        yield store.adjust("tokens:t", limit, 60)  # a charge needs no room
        assert (yield store.acquire("tokens:t", limit, 1)).remaining == pytest.approx(539, abs=1)
        assert events == []
    finally:
        yield store.stopService()
