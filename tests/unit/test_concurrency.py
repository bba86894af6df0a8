# -*- test-case-name: tests.unit.test_concurrency -*-
"""
Tests for L{llmedge.web.concurrency.ConcurrencyLimited}.
"""

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from llmedge.keys import ApiKey
from llmedge.web.concurrency import ConcurrencyLimited

KEY = ApiKey.from_text("sk-one", "one")
OWN = ApiKey.from_text("sk-own", "own", max_concurrent_requests=1)


def request_with(key):
    request = DummyRequest([b"v1"])
    request.api_key = key
    return request


def test_refuses_beyond_the_bound_and_counts_out_when_requests_end():
    limited = ConcurrencyLimited(Resource(), default=2)
    first, second, third = (request_with(KEY) for _ in range(3))
    assert limited.check(first) is None
    assert limited.check(second) is None
    refused = limited.check(third)
    assert (refused.status, refused.code) == (429, "concurrency_limit_exceeded")
    assert (b"Retry-After", b"1") in list(refused.headers)
    first.finish()
    assert limited.check(request_with(KEY)) is None
    # a client that went away counts out too
    second.processingFailed(Failure(ConnectionError("gone")))
    assert limited.counter.counts == {"one": 1}


def test_a_keys_own_bound_wins_and_keys_are_counted_apart():
    limited = ConcurrencyLimited(Resource(), default=5)
    assert limited.check(request_with(OWN)) is None
    assert limited.check(request_with(OWN)).status == 429
    assert limited.check(request_with(KEY)) is None


def test_no_bound_no_count():
    limited = ConcurrencyLimited(Resource(), default=0)
    for _ in range(100):
        assert limited.check(request_with(KEY)) is None
    assert limited.counter.counts == {}
    assert limited.check(request_with(None)) is None
