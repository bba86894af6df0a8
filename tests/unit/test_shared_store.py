# -*- test-case-name: tests.unit.test_shared_store -*-
"""
Tests for L{llmedge.limits.shared.SharedStore}: several stores over one
file decide as one, as the workers of a supervisor do.
"""

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from llmedge.limits import shared
from llmedge.limits.mapped import stable_hash
from llmedge.limits.gcra import Limit
from llmedge.limits.store import IRateLimitStore
from tests.unit.test_memory_store import fired

TEN_BURST = Limit(per_minute=60, burst=10)


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(1_800_000_000)  # epoch seconds, as the real clock gives
    return clock


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "limits")
    shared.create(path)
    return path


def stores(clock, path, n=2):
    return [shared.SharedStore(clock, path) for _ in range(n)]


def test_provides_interface(clock, path):
    assert verifyObject(IRateLimitStore, shared.SharedStore(clock, path))


def test_two_processes_share_one_burst(clock, path):
    """
    Requests alternating between two stores (two workers) are admitted
    exactly C{burst} times in all, not C{burst} times each.
    """
    a, b = stores(clock, path)
    allowed = [fired((a if i % 2 else b).acquire("key:k", TEN_BURST)).allowed for i in range(30)]
    assert allowed.count(True) == 10
    assert allowed[:10] == [True] * 10


def test_refill_seen_by_both(clock, path):
    a, b = stores(clock, path)
    for _ in range(10):
        assert fired(a.acquire("key:k", TEN_BURST)).allowed
    denied = fired(b.acquire("key:k", TEN_BURST))
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    assert fired(b.acquire("key:k", TEN_BURST)).allowed
    assert not fired(a.acquire("key:k", TEN_BURST)).allowed


def test_buckets_are_independent(clock, path):
    (a,) = stores(clock, path, 1)
    for _ in range(10):
        fired(a.acquire("key:one", TEN_BURST))
    assert not fired(a.acquire("key:one", TEN_BURST)).allowed
    assert fired(a.acquire("key:two", TEN_BURST)).remaining == 9


def test_table_survives_a_new_store(clock, path):
    """
    A restarted worker opens the same table and sees the state.
    """
    (a,) = stores(clock, path, 1)
    for _ in range(10):
        fired(a.acquire("key:k", TEN_BURST))
    a.close()
    (again,) = stores(clock, path, 1)
    assert not fired(again.acquire("key:k", TEN_BURST)).allowed


def colliding(count):
    """
    C{count} bucket names whose slots start at the same place.
    """
    names, wanted = [], None
    i = 0
    while len(names) < count:
        name = f"addr:{i}"
        start = stable_hash(name) % shared.SLOTS
        if wanted is None:
            wanted = start
        if start == wanted:
            names.append(name)
        i += 1
    return names


def test_expired_slots_are_reused(clock, path):
    """
    A bucket whose TAT has passed frees its slot: a window full of old
    buckets still admits new ones, and live buckets keep their state.
    """
    (a,) = stores(clock, path, 1)
    one = Limit(per_minute=60, burst=1)
    names = colliding(shared.WINDOW + 1)
    for name in names[: shared.WINDOW]:
        assert fired(a.acquire(name, one)).allowed
    clock.advance(2)
    assert fired(a.acquire(names[-1], one)).allowed
    assert not fired(a.acquire(names[-1], one)).allowed


def test_full_window_gives_up_the_bucket_nearest_full(clock, path):
    """
    With every slot of a window live, a new bucket takes the slot of the
    one closest to full; the others keep their state.
    """
    (a,) = stores(clock, path, 1)
    slow = Limit(per_minute=1, burst=2)
    names = colliding(shared.WINDOW + 1)
    for name in names[: shared.WINDOW]:
        fired(a.acquire(name, slow))
    # the first bucket spends its whole burst: it is the furthest from full
    fired(a.acquire(names[0], slow))
    assert fired(a.acquire(names[-1], slow)).allowed
    assert not fired(a.acquire(names[0], slow)).allowed
    assert fired(a.acquire(names[-1], slow)).remaining == 0
    # names[1] lost its slot: it starts again from a full bucket
    assert fired(a.acquire(names[1], slow)).remaining == 1


def test_wrong_file_refused(clock, tmp_path):
    bad = tmp_path / "other"
    bad.write_bytes(b"x" * 10)
    with pytest.raises(ValueError, match="not a rate-limit table"):
        shared.SharedStore(clock, str(bad))


def test_table_is_private(path):
    import os
    import stat

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
