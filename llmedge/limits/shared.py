# -*- test-case-name: tests.unit.test_shared_store -*-
"""
Rate-limit state shared by the worker processes of one llmedge, in a
memory-mapped file.

With C{WORKERS=N} the kernel hands each new connection to whichever worker
accepts first, and a keep-alive client stays on that worker. Splitting a
key's limit into N per-worker shares would therefore refuse a client that
happens to land on one worker long before it reached its limit. Instead
every worker decides against the same table: one TAT per bucket (see
L{llmedge.limits.gcra}), in a file the supervisor creates and every worker
maps.

A decision is a read-compare-write of one slot under an exclusive
C{lockf} lock on the file: two system calls around a few microseconds of
arithmetic, so workers never wait on each other for long. The clock is the
wall clock every process on the machine shares.

The table has a fixed number of slots (C{SLOTS}, 1 MiB of file). A bucket
lives in one of C{WINDOW} consecutive slots starting at its hash; a slot
whose TAT has passed describes a full bucket, exactly as an empty one does,
so it is free for another bucket. Only when all C{WINDOW} slots hold live
buckets is one of them (the one nearest to full) given up, which grants its
owner a fresh burst: a documented approximation that needs tens of
thousands of distinct clients within one refill period.
"""

from __future__ import annotations

import struct

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from llmedge.limits import mapped
from llmedge.limits.gcra import Decision, Limit, adjusted, decide
from llmedge.limits.mapped import stable_hash
from llmedge.limits.store import IRateLimitStore

SLOTS = 65536
WINDOW = 16
_SLOT = struct.Struct("=Qd")  # bucket hash (0 = empty), TAT
SIZE = SLOTS * _SLOT.size


def create(path: str) -> None:
    """
    Make an empty table at C{path} (the supervisor does, before any worker
    starts).
    """
    mapped.create(path, SIZE)


@implementer(IRateLimitStore)
class SharedStore:
    """
    An L{IRateLimitStore} over the table at C{path}, made by L{create}.
    """

    def __init__(self, clock: IReactorTime, path: str) -> None:
        self._clock = clock
        self._table = mapped.MappedTable(path, SIZE, "a rate-limit table")

    def close(self) -> None:
        self._table.close()

    def acquire(self, bucket: str, limit: Limit, cost: int = 1) -> Deferred[Decision]:
        """
        See L{IRateLimitStore.acquire}.
        """
        key = stable_hash(bucket)
        with self._table.locked() as table:
            now = self._clock.seconds()
            offset, tat = _find(table, key, now)
            decision = decide(tat, now, limit, cost)
            if decision.allowed:
                _SLOT.pack_into(table, offset, key, decision.tat)
        return succeed(decision)

    def adjust(self, bucket: str, limit: Limit, amount: int) -> Deferred[None]:
        """
        See L{IRateLimitStore.adjust}.
        """
        key = stable_hash(bucket)
        with self._table.locked() as table:
            now = self._clock.seconds()
            offset, tat = _find(table, key, now)
            new_tat = adjusted(tat, now, limit, amount)
            if new_tat is not None:
                _SLOT.pack_into(table, offset, key, new_tat)
            elif tat is not None:
                _SLOT.pack_into(table, offset, 0, 0.0)
        return succeed(None)


def _find(table, key: int, now: float) -> tuple[int, float | None]:
    """
    The slot of bucket C{key} and its live TAT, or the slot it may take
    and L{None}. Called with the lock held.
    """
    start = key % SLOTS
    free = None
    oldest, oldest_tat = start * _SLOT.size, None
    for i in range(WINDOW):
        offset = ((start + i) % SLOTS) * _SLOT.size
        owner, tat = _SLOT.unpack_from(table, offset)
        if owner == key:
            return offset, (tat if tat > now else None)
        if free is None and (owner == 0 or tat <= now):
            free = offset
        elif oldest_tat is None or tat < oldest_tat:
            oldest, oldest_tat = offset, tat
    return (free if free is not None else oldest), None
