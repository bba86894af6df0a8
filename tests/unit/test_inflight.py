# -*- test-case-name: tests.unit.test_inflight -*-
"""
Tests for L{llmedge.limits.inflight}: requests in flight per key, in one
process and across workers sharing a table.
"""

import pytest

from llmedge.limits import inflight
from llmedge.limits.inflight import LocalInFlight, SharedInFlight


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "inflight")
    inflight.create(path)
    return path


def test_local():
    counter = LocalInFlight()
    assert counter.enter("k", 2) and counter.enter("k", 2)
    assert not counter.enter("k", 2)
    counter.leave("k")
    assert counter.enter("k", 2)
    assert counter.enter("other", 1)


def test_workers_share_one_bound(path):
    zero, one = SharedInFlight(path, 0), SharedInFlight(path, 1)
    assert zero.enter("k", 3)
    assert one.enter("k", 3)
    assert one.enter("k", 3)
    assert not zero.enter("k", 3)
    assert not one.enter("k", 3)
    zero.leave("k")
    assert one.enter("k", 3)
    assert zero.enter("other", 1)


def test_a_restarted_worker_forgets_what_its_predecessor_counted(path):
    """
    A worker that died cannot leave its requests counted forever: its
    replacement (the same index) zeroes its column.
    """
    dead, other = SharedInFlight(path, 0), SharedInFlight(path, 1)
    assert dead.enter("k", 2) and dead.enter("k", 2)
    assert not other.enter("k", 2)
    SharedInFlight(path, 0)  # the replacement starts
    assert other.enter("k", 2)
    assert other.enter("k", 2)
    assert not other.enter("k", 2)


def test_leave_never_goes_below_zero(path):
    counter = SharedInFlight(path, 3)
    counter.leave("k")
    counter.leave("never-seen")
    assert counter.enter("k", 1)
    assert not counter.enter("k", 1)


def test_rows_free_again_when_their_counts_are_zero(path):
    counter = SharedInFlight(path, 0)
    # more keys than a window holds, one at a time: rows are reused
    for n in range(inflight.ROWS * 2):
        assert counter.enter(f"key-{n}", 1)
        counter.leave(f"key-{n}")


def test_bad_table_and_worker_index(tmp_path, path):
    other = tmp_path / "other"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="not an in-flight table"):
        SharedInFlight(str(other), 0)
    with pytest.raises(ValueError, match="not below"):
        SharedInFlight(path, inflight.WORKERS)
