# -*- test-case-name: tests.unit.test_memory_store -*-
"""
The interface every rate-limit store provides.

A store owns the state of L{llmedge.limits.gcra.decide} (one TAT per
bucket) and the clock it is decided against. The memory store keeps both in
the process; a Redis store will run one atomic script per decision so that
many llmedge instances share one limit. Because that one needs a network
round trip, the interface returns a L{Deferred} for every store, and the
memory store simply returns one that has already fired.
"""

from __future__ import annotations

from zope.interface import Interface


class IRateLimitStore(Interface):
    """
    Decide requests against per-bucket limits, keeping the state between
    decisions.
    """

    def acquire(bucket, limit, cost=1):
        """
        Decide one request of C{cost} units for C{bucket} under C{limit},
        at the store's own notion of now, and record it if allowed.

        The store reads its own clock rather than taking C{now}, so that the
        time a shared store decides by is one clock (Redis's), not the
        skewed clocks of many callers.

        @param bucket: Names whose requests are counted together, e.g. an
            API key's short id. Buckets are independent of each other.
        @type bucket: L{str}
        @type limit: L{llmedge.limits.gcra.Limit}
        @type cost: L{int}, between 1 and C{limit.burst}.
        @rtype: L{Deferred} firing with a L{llmedge.limits.gcra.Decision}.
        """
