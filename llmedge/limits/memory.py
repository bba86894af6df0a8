# -*- test-case-name: tests.unit.test_memory_store -*-
"""
Rate-limit state kept in this process's memory.

Right for a single llmedge instance: no network hop, no dependency. The
only care it needs is memory, since every distinct bucket (API key, client
address) adds an entry; see L{MemoryStore.prune} for how it stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from llmedge.limits.gcra import Decision, Limit, adjusted, decide
from llmedge.limits.store import IRateLimitStore

# How many expired entries each acquire() may remove on its own. Two per
# request is more than the one entry a request can add, so the table cannot
# outgrow the live buckets even if the looping call falls behind, while
# keeping the extra work per request constant.
OPPORTUNISTIC_PRUNE = 2


@implementer(IRateLimitStore)
class MemoryStore(Service):
    """
    An L{IRateLimitStore} keeping one TAT per bucket in an L{OrderedDict}.

    As a L{Service} it can be attached to the daemon's C{MultiService}:
    starting it starts the periodic L{prune}, stopping it stops it.

    @ivar prune_interval: Seconds between two runs of L{prune}.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, prune_interval: float = 10.0) -> None:
        self._clock = clock
        self.prune_interval = prune_interval
        # bucket -> TAT, least recently allowed first.
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._loop = LoopingCall(self.prune)
        self._loop.clock = clock

    def __len__(self) -> int:
        """
        The number of buckets tracked, expired but not yet pruned included.
        """
        return len(self._tats)

    def acquire(self, bucket: str, limit: Limit, cost: int = 1) -> Deferred[Decision]:
        """
        See L{IRateLimitStore.acquire}.

        Only an allowed request writes: a denial leaves the TAT and the
        bucket's place in the order as they were.
        """
        now = self._clock.seconds()
        self._prune(now, OPPORTUNISTIC_PRUNE)
        decision = decide(self._tats.get(bucket), now, limit, cost)
        if decision.allowed:
            self._tats[bucket] = decision.tat
            self._tats.move_to_end(bucket)
        return succeed(decision)

    def adjust(self, bucket: str, limit: Limit, amount: int) -> Deferred[None]:
        """
        See L{IRateLimitStore.adjust}.
        """
        tat = adjusted(self._tats.get(bucket), self._clock.seconds(), limit, amount)
        if tat is None:
            self._tats.pop(bucket, None)
        else:
            self._tats[bucket] = tat
            self._tats.move_to_end(bucket)
        return succeed(None)

    def prune(self) -> int:
        """
        Forget the buckets that have expired, from the oldest on.

        An entry whose TAT is at or before now describes a full bucket,
        which is exactly what an absent entry means, so removing it changes
        no decision. Entries are kept in the order they were last allowed,
        so the expired ones gather at the front: this pops from the front
        and stops at the first entry still live, which makes pruning cost
        amortised O(1) per request instead of a scan of every bucket.

        The order is by last update, not by TAT, so an expired entry can sit
        behind a live one (a bucket that bursted, or one with a slower
        limit). It is then removed on a later run, once everything in front
        of it has expired too, and until then it is harmless: its TAT is in
        the past, so it decides exactly as a missing entry would. The delay
        is bounded: an entry is stuck only behind entries updated before it,
        and each of those expires at most C{capacity_seconds} after its
        update, so memory stays proportional to the buckets active within
        the longest C{capacity_seconds}.

        @return: The number of buckets forgotten.
        """
        return self._prune(self._clock.seconds(), None)

    def _prune(self, now: float, most: int | None) -> int:
        tats = self._tats
        removed = 0
        while tats and (most is None or removed < most):
            bucket, tat = next(iter(tats.items()))
            if tat > now:
                break
            del tats[bucket]
            removed += 1
        return removed

    def start(self) -> None:
        """
        Run L{prune} every C{prune_interval} seconds on the injected clock.
        """
        if not self._loop.running:
            started = self._loop.start(self.prune_interval, now=False)
            started.addErrback(
                lambda failure: self._log.failure(
                    "Rate-limit pruning stopped", failure
                )
            )

    def stop(self) -> None:
        """
        Stop the periodic L{prune}, leaving no delayed call on the clock.
        """
        if self._loop.running:
            self._loop.stop()

    def startService(self) -> None:
        Service.startService(self)
        self.start()

    def stopService(self) -> Deferred[None] | None:
        self.stop()
        return Service.stopService(self)
