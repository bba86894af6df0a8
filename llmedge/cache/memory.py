# -*- test-case-name: tests.unit.test_cache_memory -*-
"""
Cached answers kept in this process's memory, bounded in bytes.

Right for a single llmedge instance. Its one duty beyond a dict is the
bound: answers are large and every distinct request adds one, so the store
counts the bytes it holds and evicts the least recently used entries to
stay within C{max_bytes}.

Expiry needs no timer per entry. An entry records when it expires (by the
injected clock) and is dropped when met: by L{MemoryCache.get}, or at the
least recently used end while making room. An expired entry elsewhere is
either hot (so a C{get} meets it soon) or cold (so it drifts to that end);
either way it is reclaimed without a sweep.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from llmedge.cache.store import ICacheStore

# Bytes counted for each entry on top of len(key) + len(value): an estimate
# of what CPython spends around them (the key's str header, the bytes
# header, the entry tuple, the float expiry and the OrderedDict's hash slot
# and link). Not exact, and it need not be: it makes many small entries
# count for what they cost, so a flood of tiny answers cannot hold far more
# memory than max_bytes says.
ENTRY_OVERHEAD = 256


class _Entry(NamedTuple):
    value: bytes
    expires: float


def _size(key: str, value: bytes) -> int:
    """
    The bytes an entry counts against the bound.
    """
    return len(key) + len(value) + ENTRY_OVERHEAD


@implementer(ICacheStore)
class MemoryCache:
    """
    An L{ICacheStore} in an L{OrderedDict}, least recently used first.

    An entry is expired from the instant C{clock.seconds()} reaches its
    expiry (C{now >= put time + ttl}), so a C{ttl} of 10 means "readable for
    less than ten seconds", never for a moment past it.

    A value whose entry alone exceeds C{max_bytes} is not stored (and any
    older value under the same key is dropped, since C{put} means the old
    one is superseded): storing it would evict everything else for one
    answer. A non-positive C{ttl} is likewise not stored.

    @ivar max_bytes: The bound on L{stats}C{()["bytes"]}.
    """

    def __init__(self, clock: IReactorTime, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self._clock = clock
        self.max_bytes = max_bytes
        # key -> entry, least recently used first.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._evictions = 0

    def get(self, key: str) -> Deferred[bytes | None]:
        """
        See L{ICacheStore.get}. A hit becomes the most recently used entry;
        an expired entry met here is dropped.
        """
        entry = self._entries.get(key)
        if entry is None:
            return succeed(None)
        if self._clock.seconds() >= entry.expires:
            self._remove(key)
            return succeed(None)
        self._entries.move_to_end(key)
        return succeed(entry.value)

    def put(self, key: str, value: bytes, ttl: float) -> Deferred[None]:
        """
        See L{ICacheStore.put}. The new entry is the most recently used;
        older entries are evicted until the bound holds again.
        """
        if key in self._entries:
            self._remove(key)
        size = _size(key, value)
        if ttl <= 0 or size > self.max_bytes:
            return succeed(None)
        self._make_room(size)
        self._entries[key] = _Entry(value, self._clock.seconds() + ttl)
        self._bytes += size
        return succeed(None)

    def stats(self) -> dict:
        """
        See L{ICacheStore.stats}. C{evictions} counts live entries removed
        for room, not expired ones dropped.
        """
        return {
            "bytes": self._bytes,
            "entries": len(self._entries),
            "evictions": self._evictions,
        }

    def _remove(self, key: str) -> _Entry:
        """
        Forget C{key}'s entry and the bytes it counted.
        """
        entry = self._entries.pop(key)
        self._bytes -= _size(key, entry.value)
        return entry

    def _make_room(self, size: int) -> None:
        """
        Remove entries from the least recently used end until C{size} more
        bytes fit. Expired ones met on the way are dropped without counting
        as evictions: they were gone already.
        """
        now = self._clock.seconds()
        while self._entries and self._bytes + size > self.max_bytes:
            key = next(iter(self._entries))
            if self._remove(key).expires > now:
                self._evictions += 1
