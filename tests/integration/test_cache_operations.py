# -*- test-case-name: tests.integration.test_cache_operations -*-
"""
The response cache as the operator meets it, through the real daemon: hits
spend no token budget, C{/metrics} counts hits, misses and bypasses, the
access event says what the cache did, and a small C{cache.max_bytes}
keeps the daemon's memory bounded under many distinct requests. Fixtures
and helpers are test_cache's (a daemon of this module's own).
"""

from __future__ import annotations

import json
import uuid

import httpx2 as httpx
import openai
import pytest

from llmedge.testing import Daemon
from tests.integration.conftest import metric
from tests.integration.test_cache import (
    FRUGAL_KEY,
    KEY_A,
    MiB,
    WAIT,
    chat,
    fresh,
    module_fixtures,
    reached,
    said,
    sdk,
)

upstream, daemon, client, claude = module_fixtures()


@pytest.fixture(scope="module")
def bounded():
    """
    A daemon on the mock provider, its cache held to 64 KiB.
    """
    env = {"API_KEYS": KEY_A, "CACHE_ENABLED": "true", "CACHE_MAX_BYTES": "65536",
           "RATE_LIMIT_BURST": "100000", "RATE_LIMIT_RPM": "1000000"}
    with Daemon(env=env) as running:
        yield running

# -- Token budgets ---------------------------------------------------------------


def test_hits_do_not_spend_the_key_s_token_budget(upstream, daemon):
    frugal = sdk(daemon, FRUGAL_KEY)
    prompt = fresh()
    assert chat(frugal, "chat", prompt, max_tokens=20)[0] == "miss"
    # Thirty answers of 12 tokens: more than three times the budget.
    results = [chat(frugal, "chat", prompt, max_tokens=20)[0] for _ in range(30)]
    assert results == ["hit"] * 30
    # The budget is untouched by them, and real: misses soon spend it.
    statuses = []
    for _ in range(30):
        try:
            chat(frugal, "chat", fresh(), max_tokens=20)
        except openai.RateLimitError:
            statuses.append(429)
            break
        statuses.append(200)
    assert statuses[0] == 200 and statuses[-1] == 429
    assert len(reached(upstream, prompt)) == 1


# -- What the operator sees --------------------------------------------------------


def cache_requests(daemon) -> dict[str, float]:
    return {result: metric(daemon.host_port, "llmedge_cache_requests_total", result=result)
            or 0.0 for result in ("hit", "miss", "bypass")}


def test_metrics_count_hits_misses_and_bypasses(client, daemon):
    before = cache_requests(daemon)
    prompt = fresh()
    chat(client, "chat", prompt)
    chat(client, "chat", prompt)
    chat(client, "chat", prompt)
    chat(client, "uncached", prompt)
    # Counted as each request ends, before its answer leaves the daemon.
    after = cache_requests(daemon)
    moved = {result: after[result] - before[result] for result in after}
    assert moved == {"hit": 2.0, "miss": 1.0, "bypass": 1.0}
    assert metric(daemon.host_port, "llmedge_cache_entries") >= 1
    assert metric(daemon.host_port, "llmedge_cache_bytes") > 0


def test_the_access_event_says_what_the_cache_did(client, daemon):
    prompt = fresh()
    tagged = {}
    for model, result in (("chat", "miss"), ("chat", "hit"), ("uncached", "bypass")):
        rid = "req-" + uuid.uuid4().hex
        assert chat(client, model, prompt, extra_headers={"x-request-id": rid})[0] == result
        tagged[rid] = result
    for rid, result in tagged.items():
        line = daemon.wait_for_line(lambda line: rid in line and '"llmedge.access"' in line,
                                    timeout=WAIT)
        assert json.loads(line)["cache"] == result


def test_a_small_max_bytes_bounds_memory_under_many_distinct_requests(bounded):
    padding = "x" * 8192
    with httpx.Client(base_url=bounded.base_url, timeout=WAIT,
                      headers={"Authorization": f"Bearer {KEY_A}"}) as http:

        def ask(i: int) -> None:
            body = {"model": "mock", "messages": said(f"{i} {padding}")}
            response = http.post("/v1/chat/completions", json=body)
            assert response.status_code == 200
            assert response.headers["x-llmedge-cache"] == "miss"

        for i in range(200):  # the cache is full, the process warm
            ask(i)
        before = bounded.rss()
        for i in range(200, 2200):
            ask(i)
        grown = bounded.rss() - before
    address = bounded.host_port
    assert metric(address, "llmedge_cache_bytes") <= 65536
    assert metric(address, "llmedge_cache_entries") < 65536 / len(padding)
    assert metric(address, "llmedge_cache_evictions_total") > 0
    # Kept, 2000 answers of twice the padding would be over 32 MiB.
    assert grown < 16 * MiB
