"""
The back door with the response cache on: a stream the cache reads on its
way to the client is a buffer an upstream fills, so it is bounded too. An
upstream streaming wide, well-formed chunks forever is relayed until the
deadline cuts it; the cache stops reading it at its entry bound (so the
daemon's memory stays flat), and a stream cut short is never kept.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import API_KEY
from tests.integration.test_back_door import MODELS, MiB, assert_served, last_entry, running_daemon, sdk_client

#: upstream.max_response_bytes here, which bounds a cache entry.
ENTRY_BOUND = 1 * MiB


@pytest.fixture(scope="module")
def cached(hostile, tmp_path_factory):
    yield from running_daemon(hostile, tmp_path_factory, CACHE_ENABLED="true",
                              SERVER_TIMEOUT_SECONDS="3",
                              UPSTREAM_MAX_RESPONSE_BYTES=str(ENTRY_BOUND))


def stream_until_cut(daemon) -> tuple[str, int]:
    """
    Read a stream of endless wide chunks until the deadline ends it: the
    cache's answer and the bytes read.
    """
    body = {"model": "wide-events", "stream": True,
            "messages": [{"role": "user", "content": "forever"}]}
    where = urlsplit(daemon.base_url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        connection.request("POST", "/v1/chat/completions", json.dumps(body),
                           {"Authorization": f"Bearer {API_KEY}",
                            "Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        read = 0
        while piece := response.read1(65536):
            read += len(piece)
        return response.getheader("x-llmedge-cache"), read
    finally:
        connection.close()


def test_an_endless_stream_is_read_by_the_cache_only_up_to_its_bound(cached, hostile):
    client = sdk_client(cached)
    assert_served(client)
    before = cached.rss()
    result, read = stream_until_cut(cached)
    assert result == "miss"
    # The client got far more than an entry may hold ...
    assert read > 8 * ENTRY_BOUND
    # ... and the cache held none of it past the bound.
    assert cached.peak_rss() - before < 2 * ENTRY_BOUND + 16 * MiB
    entry = hostile.wait_closed(last_entry(hostile, MODELS["wide-events"][1])["n"])
    assert entry["closed_by"] == "peer"
    assert_served(client)


def test_a_stream_cut_by_the_deadline_is_not_kept(cached):
    stream_until_cut(cached)
    result, _ = stream_until_cut(cached)
    assert result == "miss"
