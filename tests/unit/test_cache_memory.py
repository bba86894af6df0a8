# -*- test-case-name: tests.unit.test_cache_memory -*-
"""
Tests for L{llmedge.cache.memory.MemoryCache}: the byte-bounded LRU with
expiry, on a L{Clock}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from llmedge.cache.memory import ENTRY_OVERHEAD, MemoryCache
from llmedge.cache.store import ICacheStore

TTL = 60.0


def entry_size(key, value):
    return len(key) + len(value) + ENTRY_OVERHEAD


def got(cache, key):
    """
    The value C{cache.get} fires with, which it must have done already.
    """
    results = []
    cache.get(key).addCallback(results.append)
    assert len(results) == 1
    return results[0]


def put(cache, key, value, ttl=TTL):
    results = []
    cache.put(key, value, ttl).addCallback(results.append)
    assert results == [None]


def room_for(count, value=b"v" * 10, key="k0"):
    """
    A bound that holds exactly C{count} entries like C{key}: C{value}.
    """
    return count * entry_size(key, value)


def test_provides_icachestore():
    assert verifyObject(ICacheStore, MemoryCache(Clock(), 1000))


def test_get_of_absent_key_is_none():
    assert got(MemoryCache(Clock(), 1000), "nope") is None


def test_put_then_get_returns_the_value():
    cache = MemoryCache(Clock(), 1000)
    put(cache, "k", b"answer")
    assert got(cache, "k") == b"answer"


def test_stats_count_entries_and_bytes():
    cache = MemoryCache(Clock(), 10_000)
    put(cache, "k1", b"abc")
    put(cache, "k2", b"defgh")
    assert cache.stats() == {
        "bytes": entry_size("k1", b"abc") + entry_size("k2", b"defgh"),
        "entries": 2,
        "evictions": 0,
    }


def test_put_replaces_an_existing_key():
    cache = MemoryCache(Clock(), 10_000)
    put(cache, "k", b"old value")
    put(cache, "k", b"new")
    assert got(cache, "k") == b"new"
    assert cache.stats()["entries"] == 1
    assert cache.stats()["bytes"] == entry_size("k", b"new")


def test_least_recently_used_is_evicted_first():
    cache = MemoryCache(Clock(), room_for(2))
    put(cache, "k1", b"v" * 10)
    put(cache, "k2", b"v" * 10)
    put(cache, "k3", b"v" * 10)
    assert [got(cache, k) is not None for k in ("k1", "k2", "k3")] == [
        False,
        True,
        True,
    ]


def test_get_refreshes_recency():
    cache = MemoryCache(Clock(), room_for(2))
    put(cache, "k1", b"v" * 10)
    put(cache, "k2", b"v" * 10)
    got(cache, "k1")
    put(cache, "k3", b"v" * 10)
    assert got(cache, "k1") is not None
    assert got(cache, "k2") is None


def test_put_of_existing_key_refreshes_recency():
    cache = MemoryCache(Clock(), room_for(2))
    put(cache, "k1", b"v" * 10)
    put(cache, "k2", b"v" * 10)
    put(cache, "k1", b"w" * 10)
    put(cache, "k3", b"v" * 10)
    assert got(cache, "k1") == b"w" * 10
    assert got(cache, "k2") is None


def test_evictions_are_counted():
    cache = MemoryCache(Clock(), room_for(2))
    for n in range(5):
        put(cache, f"k{n}", b"v" * 10)
    assert cache.stats()["evictions"] == 3


def test_byte_bound_holds_after_many_distinct_puts():
    max_bytes = 5_000
    cache = MemoryCache(Clock(), max_bytes)
    for n in range(1_000):
        put(cache, f"key-{n}", b"x" * (n * 37 % 900))
        assert cache.stats()["bytes"] <= max_bytes
    assert cache.stats()["entries"] > 0
    assert cache.stats()["evictions"] > 0


def test_entry_is_readable_just_before_expiry():
    clock = Clock()
    cache = MemoryCache(clock, 1000)
    put(cache, "k", b"v", ttl=10)
    clock.advance(9.999)
    assert got(cache, "k") == b"v"


def test_entry_is_expired_at_exactly_its_expiry():
    clock = Clock()
    cache = MemoryCache(clock, 1000)
    put(cache, "k", b"v", ttl=10)
    clock.advance(10)
    assert got(cache, "k") is None


def test_expired_entry_met_on_get_is_dropped():
    clock = Clock()
    cache = MemoryCache(clock, 1000)
    put(cache, "k", b"v", ttl=10)
    clock.advance(10)
    got(cache, "k")
    assert cache.stats() == {"bytes": 0, "entries": 0, "evictions": 0}


def test_get_does_not_extend_expiry():
    clock = Clock()
    cache = MemoryCache(clock, 1000)
    put(cache, "k", b"v", ttl=10)
    clock.advance(5)
    got(cache, "k")
    clock.advance(5)
    assert got(cache, "k") is None


def test_expired_entries_made_room_for_are_not_counted_as_evictions():
    clock = Clock()
    cache = MemoryCache(clock, room_for(2))
    put(cache, "k1", b"v" * 10, ttl=10)
    put(cache, "k2", b"v" * 10, ttl=100)
    clock.advance(10)
    put(cache, "k3", b"v" * 10)
    assert cache.stats()["evictions"] == 0
    assert [got(cache, k) is not None for k in ("k2", "k3")] == [True, True]


def test_oversize_value_is_not_stored():
    cache = MemoryCache(Clock(), 1000)
    put(cache, "k", b"x" * 1000)
    assert got(cache, "k") is None
    assert cache.stats() == {"bytes": 0, "entries": 0, "evictions": 0}


def test_oversize_value_evicts_nothing():
    cache = MemoryCache(Clock(), 1000)
    put(cache, "small", b"v")
    put(cache, "big", b"x" * 1000)
    assert got(cache, "small") == b"v"


def test_oversize_value_drops_the_superseded_value_of_its_key():
    cache = MemoryCache(Clock(), 1000)
    put(cache, "k", b"old")
    put(cache, "k", b"x" * 1000)
    assert got(cache, "k") is None


def test_value_exactly_filling_the_bound_is_stored():
    value = b"x" * 100
    cache = MemoryCache(Clock(), entry_size("k", value))
    put(cache, "k", value)
    assert got(cache, "k") == value


def test_non_positive_ttl_is_not_stored():
    cache = MemoryCache(Clock(), 1000)
    put(cache, "k", b"v", ttl=0)
    assert got(cache, "k") is None
    assert cache.stats()["entries"] == 0


def test_negative_max_bytes_is_refused():
    with pytest.raises(ValueError):
        MemoryCache(Clock(), -1)
