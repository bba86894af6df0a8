# -*- test-case-name: tests.unit.test_token_limits -*-
"""
Tests for L{llmedge.web.token_limits}: estimates, reservations and their
settlement, with a memory store on a clock; and L{gcra.adjusted} and the
stores' C{adjust}.
"""

import pytest
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from llmedge.keys import ApiKey
from llmedge.limits import shared
from llmedge.limits.gcra import Limit, adjusted, decide
from llmedge.limits.memory import MemoryStore
from llmedge.observe.exchange import Exchange
from llmedge.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from llmedge.web.token_limits import TokenLimiter, estimate
from tests.unit.test_memory_store import fired

KEY = ApiKey.from_text("sk-t", "t", tokens_per_minute=600)
PLAIN = ApiKey.from_text("sk-p", "p")
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def test_estimates():
    prompt = estimate(CHAT, {**CHAT_BODY, "max_tokens": 1}, 99) - 1
    assert prompt > 0
    assert estimate(CHAT, {**CHAT_BODY, "max_tokens": 50}, 99) == prompt + 50
    assert estimate(CHAT, {**CHAT_BODY, "max_completion_tokens": 20, "max_tokens": 50}, 99) \
        == prompt + 20
    assert estimate(CHAT, {**CHAT_BODY, "max_tokens": 10, "n": 3}, 99) == prompt + 30
    assert estimate(CHAT, CHAT_BODY, 99) == prompt + 99
    assert estimate(COMPLETIONS, {"prompt": "one two", "max_tokens": 5}, 99) == 2 + 5
    assert estimate(COMPLETIONS, {"prompt": [1, 2, 3], "max_tokens": 5}, 99) == 3 + 5
    assert estimate(EMBEDDINGS, {"input": ["a b", "c"]}, 99) == 3


def test_adjusted():
    limit = Limit(per_minute=60, burst=60)  # one unit a second
    assert adjusted(None, 100.0, limit, -5) is None  # nothing to give back
    assert adjusted(None, 100.0, limit, 5) == 105.0
    assert adjusted(110.0, 100.0, limit, -4) == 106.0
    assert adjusted(110.0, 100.0, limit, -20) is None  # never fuller than full
    assert adjusted(90.0, 100.0, limit, 3) == 103.0  # an old TAT counts from now


class Request(DummyRequest):
    def __init__(self, key):
        super().__init__([b"v1"])
        self.api_key = key
        self.exchange = Exchange(0.0)

    def header(self, name):
        return self.responseHeaders.getRawHeaders(name, [None])[0]


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(1000)
    return clock


def limiter(clock, store=None, default=0):
    return TokenLimiter(store or MemoryStore(clock), default, 100)


def test_reserve_sets_headers_and_settles_on_usage(clock):
    tokens = limiter(clock)
    body = {**CHAT_BODY, "max_tokens": 200}
    needed = estimate(CHAT, body, 100)
    first = Request(KEY)
    assert fired(tokens.reserve(first, CHAT, body)) is None
    assert first.header(b"x-ratelimit-limit-tokens") == b"600"
    assert first.header(b"x-ratelimit-remaining-tokens") == b"%d" % (600 - needed)
    # the answer used 30 tokens: the rest comes back
    first.exchange.outcome = "ok"
    first.exchange.prompt_tokens, first.exchange.completion_tokens = 10, 20
    first.finish()
    second = Request(KEY)
    fired(tokens.reserve(second, CHAT, body))
    assert second.header(b"x-ratelimit-remaining-tokens") == b"%d" % (600 - 30 - needed)


def test_refused_when_the_reservation_does_not_fit_now(clock):
    tokens = limiter(clock)
    body = {**CHAT_BODY, "max_tokens": 400}
    fired(tokens.reserve(Request(KEY), CHAT, body))
    refusal = fired(tokens.reserve(Request(KEY), CHAT, body))
    assert refusal.status == 429
    headers = dict(refusal.headers)
    assert int(headers[b"Retry-After"]) >= 1
    assert b"x-ratelimit-remaining-tokens" in headers


def test_larger_than_the_budget_is_refused_without_retry_after(clock):
    refusal = fired(limiter(clock).reserve(Request(KEY), CHAT, {**CHAT_BODY, "max_tokens": 1000}))
    assert (refusal.status, refusal.param) == (429, "max_tokens")
    assert b"Retry-After" not in dict(refusal.headers)
    assert "Request too large" in refusal.message


def test_failed_call_gives_everything_back(clock):
    tokens = limiter(clock)
    body = {**CHAT_BODY, "max_tokens": 500}
    request = Request(KEY)
    fired(tokens.reserve(request, CHAT, body))
    request.exchange.outcome = "error"
    request.processingFailed(Failure(RuntimeError("upstream down")))
    again = Request(KEY)
    assert fired(tokens.reserve(again, CHAT, body)) is None


def test_abandoned_or_unreported_keeps_the_reservation(clock):
    tokens = limiter(clock)
    body = {**CHAT_BODY, "max_tokens": 280}
    for outcome in ("cancelled", "ok"):  # ok without usage
        request = Request(KEY)
        assert fired(tokens.reserve(request, CHAT, body)) is None
        request.exchange.outcome = outcome
        request.finish()
    assert fired(tokens.reserve(Request(KEY), CHAT, body)).status == 429


def test_keys_without_a_budget_pass(clock):
    assert fired(limiter(clock).reserve(Request(PLAIN), CHAT, CHAT_BODY)) is None
    assert limiter(clock).limit_for(None) is None
    assert limiter(clock, default=1000).limit_for(PLAIN).per_minute == 1000


def test_shared_table_settles_too(clock, tmp_path):
    path = str(tmp_path / "limits")
    shared.create(path)
    a, b = shared.SharedStore(clock, path), shared.SharedStore(clock, path)
    limit = Limit(per_minute=600, burst=600)
    assert fired(a.acquire("tokens:t", limit, 500)).allowed
    assert not fired(b.acquire("tokens:t", limit, 500)).allowed
    fired(a.adjust("tokens:t", limit, -450))  # used 50 of 500
    assert fired(b.acquire("tokens:t", limit, 500)).allowed
    fired(b.adjust("tokens:t", limit, -10_000))  # never fuller than full
    assert fired(a.acquire("tokens:t", limit, 1)).remaining == 599


def test_memory_store_adjust_matches_decide(clock):
    store = MemoryStore(clock)
    limit = Limit(per_minute=60, burst=60)
    fired(store.acquire("b", limit, 30))
    fired(store.adjust("b", limit, -10))
    expected = decide(clock.seconds() + 20, clock.seconds(), limit, 1)
    assert fired(store.acquire("b", limit, 1)).remaining == expected.remaining
    fired(store.adjust("b", limit, -1000))
    assert len(store) == 0
