# -*- test-case-name: tests.unit.test_memory_store -*-
"""
The interface every rate-limit store provides.

A store owns the state of L{llmedge.limits.gcra.decide} (one TAT per
bucket) and the clock it is decided against. The memory store keeps both in
the process; the Redis store runs one atomic script per decision so that
many llmedge instances share one limit. Because that one needs a network
round trip, the interface returns a L{Deferred} for every store, and the
memory store simply returns one that has already fired.
"""

from __future__ import annotations

from zope.interface import Interface


class StoreUnavailable(Exception):
    """
    The store cannot decide (its backend is down) and its policy is to
    refuse rather than to admit: the request is answered with 503.
    """


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
        @rtype: L{Deferred} firing with a L{llmedge.limits.gcra.Decision},
            or failing with L{StoreUnavailable}.
        """

    def adjust(bucket, limit, amount):
        """
        Count C{amount} more units (negative: give back) as spent by
        C{bucket}, without deciding anything: settles a reservation made
        with L{acquire} once the real cost is known (see
        L{llmedge.limits.gcra.adjusted}).

        @type amount: L{int}
        @rtype: L{Deferred} firing with L{None} (never failing: a store that
            cannot settle logs it and forgets it).
        """
