# -*- test-case-name: tests.unit.test_memory_store -*-
"""
Tests for L{llmedge.limits.memory.MemoryStore}, with time driven by a
L{Clock}.
"""

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from llmedge.limits.gcra import Limit
from llmedge.limits.memory import MemoryStore
from llmedge.limits.store import IRateLimitStore

ONE_A_SECOND = Limit(per_minute=60, burst=10)
# One request, refilled after one second: every bucket expires 1 s after use.
SINGLE = Limit(per_minute=60, burst=1)
# One request per minute: a bucket stays live for 60 s.
SLOW = Limit(per_minute=1, burst=1)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(clock):
    return MemoryStore(clock, prune_interval=10.0)


def fired(deferred):
    """
    The result of a L{Deferred} that must already have fired.
    """
    results = []
    deferred.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def acquire(store, bucket, limit=ONE_A_SECOND, cost=1):
    return fired(store.acquire(bucket, limit, cost))


def test_store_provides_the_interface(store):
    assert verifyObject(IRateLimitStore, store)


def test_acquire_returns_an_already_fired_deferred(store):
    decision = fired(store.acquire("key", ONE_A_SECOND))
    assert (decision.allowed, decision.remaining) == (True, 9)


def test_acquire_remembers_the_bucket(store):
    acquire(store, "key")
    assert acquire(store, "key").remaining == 8


def test_acquire_decides_at_the_store_clock(store, clock):
    for _ in range(10):
        acquire(store, "key")
    assert not acquire(store, "key").allowed
    clock.advance(1.0)
    assert acquire(store, "key").allowed


def test_buckets_are_independent(store):
    for _ in range(10):
        acquire(store, "a")
    assert not acquire(store, "a").allowed
    assert acquire(store, "b").remaining == 9


def test_cost_is_passed_to_the_decision(store):
    assert acquire(store, "key", cost=4).remaining == 6


def test_denial_does_not_change_state(store, clock):
    for _ in range(10):
        acquire(store, "key")
    first = acquire(store, "key")
    for _ in range(100):
        acquire(store, "key")
    clock.advance(first.retry_after)
    assert acquire(store, "key").allowed


def test_len_counts_tracked_buckets(store):
    for bucket in ("a", "b", "c", "a"):
        acquire(store, bucket)
    assert len(store) == 3


def test_prune_removes_expired_buckets_only(store, clock):
    acquire(store, "single", SINGLE)
    acquire(store, "slow", SLOW)
    clock.advance(1.0)
    assert store.prune() == 1
    assert len(store) == 1
    assert not acquire(store, "slow", SLOW).allowed


def test_prune_keeps_expired_bucket_behind_a_live_one_until_later(store, clock):
    """
    Pruning stops at the first live entry: an expired bucket that was used
    after a longer-lived one waits for it, and goes on a later run.
    """
    acquire(store, "slow", SLOW)
    acquire(store, "single", SINGLE)
    clock.advance(1.0)
    assert store.prune() == 0
    assert len(store) == 2
    clock.advance(59.0)
    assert store.prune() == 2
    assert len(store) == 0


def test_expired_bucket_not_yet_pruned_decides_as_a_fresh_one(store, clock):
    acquire(store, "slow", SLOW)
    acquire(store, "single", SINGLE)
    clock.advance(1.0)
    store.prune()
    assert acquire(store, "single", SINGLE).allowed


def test_reused_bucket_moves_behind_others(store, clock):
    acquire(store, "a")
    acquire(store, "b", SLOW)
    clock.advance(0.5)
    acquire(store, "a")
    clock.advance(1.5)
    # "a" has expired, but it was used after "b", so it now waits behind "b".
    assert store.prune() == 0


def test_denial_keeps_bucket_place_in_prune_order(store, clock):
    for _ in range(10):
        acquire(store, "a")
    acquire(store, "b", SINGLE)
    clock.advance(0.5)
    assert not acquire(store, "a").allowed
    clock.advance(0.5)
    # "b" has expired but stays behind "a", which the denial did not move.
    assert store.prune() == 0


def test_looping_call_prunes_many_buckets(store, clock):
    store.startService()
    for i in range(100_000):
        acquire(store, f"key-{i}", SINGLE)
    assert len(store) == 100_000
    clock.advance(store.prune_interval)
    assert len(store) == 0


def test_looping_call_does_not_run_before_the_interval(store, clock):
    store.startService()
    acquire(store, "key", SINGLE)
    clock.advance(store.prune_interval - 1.0)
    assert len(store) == 1


def test_acquire_prunes_opportunistically_when_keys_churn(store, clock):
    """
    With no looping call running, a new bucket every 10 ms that lives 1 s
    keeps about 100 entries, not one per bucket ever seen.
    """
    largest = 0
    for i in range(50_000):
        acquire(store, f"key-{i}", SINGLE)
        largest = max(largest, len(store))
        clock.advance(0.01)
    assert largest < 200


def test_start_service_schedules_pruning(store, clock):
    store.startService()
    assert len(clock.getDelayedCalls()) == 1


def test_stop_service_leaves_no_delayed_calls(store, clock):
    store.startService()
    store.stopService()
    assert clock.getDelayedCalls() == []
    assert not store.running


def test_stop_without_start_is_harmless(store, clock):
    store.stop()
    assert clock.getDelayedCalls() == []


def test_start_twice_schedules_one_loop(store, clock):
    store.start()
    store.start()
    assert len(clock.getDelayedCalls()) == 1
