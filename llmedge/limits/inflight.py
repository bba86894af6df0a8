# -*- test-case-name: tests.unit.test_inflight -*-
"""
Requests in flight per API key, counted in this process or across the
workers of one supervisor.

L{LocalInFlight} is a dictionary. L{SharedInFlight} is a table in a
memory-mapped file the supervisor creates and every worker maps: one row
per key (found by a stable hash, as in L{llmedge.limits.shared}) holding
one counter per worker. A worker only ever changes its own counter and a
decision reads the row's sum, under a C{lockf} lock on the file. Because
each worker owns its column, a worker that dies cannot leave counts behind
forever: its replacement (the same index) zeroes its column when it
starts, so requests the dead worker was serving stop counting then.
"""

from __future__ import annotations

import struct

from llmedge.limits import mapped
from llmedge.limits.mapped import stable_hash

#: Rows in the shared table, and workers a row has counters for.
ROWS = 4096
WORKERS = 64
WINDOW = 16
_HEAD = struct.Struct("=Q")
_COUNTS = struct.Struct(f"={WORKERS}i")
_COUNT = struct.Struct("=i")
_ROW = _HEAD.size + _COUNTS.size
SIZE = ROWS * _ROW


class LocalInFlight:
    """
    Counts in this process.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def enter(self, key: str, bound: int) -> bool:
        count = self.counts.get(key, 0)
        if count >= bound:
            return False
        self.counts[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)


def create(path: str) -> None:
    """
    Make an empty table at C{path} (the supervisor does, before any worker
    starts).
    """
    mapped.create(path, SIZE)


class SharedInFlight:
    """
    Counts shared by the workers, in the table at C{path}; this worker's
    counters are column C{worker}, zeroed when it starts.
    """

    def __init__(self, path: str, worker: int) -> None:
        if not 0 <= worker < WORKERS:
            raise ValueError(f"worker index {worker} is not below {WORKERS}")
        self._table = mapped.MappedTable(path, SIZE, "an in-flight table")
        self._column = _HEAD.size + 4 * worker
        with self._table.locked() as table:
            for row in range(ROWS):
                _COUNT.pack_into(table, row * _ROW + self._column, 0)

    def enter(self, key_id: str, bound: int) -> bool:
        key = stable_hash(key_id)
        with self._table.locked() as table:
            offset = _row(table, key, claim=True)
            if offset is None:
                return True  # the table is full here: admit rather than refuse blindly
            if sum(_COUNTS.unpack_from(table, offset + _HEAD.size)) >= bound:
                return False
            _add(table, offset + self._column, 1)
            return True

    def leave(self, key_id: str) -> None:
        key = stable_hash(key_id)
        with self._table.locked() as table:
            offset = _row(table, key, claim=False)
            if offset is not None:
                _add(table, offset + self._column, -1)


def _add(table, offset: int, change: int) -> None:
    (count,) = _COUNT.unpack_from(table, offset)
    _COUNT.pack_into(table, offset, max(0, count + change))


def _row(table, key: int, claim: bool) -> int | None:
    """
    The offset of C{key}'s row; with C{claim}, a free row is taken for it
    (one whose counters are all zero). Called locked.
    """
    start = key % ROWS
    free = None
    for i in range(WINDOW):
        offset = ((start + i) % ROWS) * _ROW
        (owner,) = _HEAD.unpack_from(table, offset)
        if owner == key:
            return offset
        if free is None and not any(_COUNTS.unpack_from(table, offset + _HEAD.size)):
            free = offset
    if claim and free is not None:
        _HEAD.pack_into(table, free, key)
        return free
    return None
