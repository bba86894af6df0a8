# -*- test-case-name: tests.unit.test_cache_memory -*-
"""
The interface every response-cache store provides.

A cache is an optimisation, never a dependency: a store that cannot answer
(Redis down, slow, full) must not turn into a failed request. So the
contract has one failure, L{CacheUnavailable}, and its meaning is fixed:
the caller goes upstream as if the cache were off and marks the answer
C{x-llmedge-cache: bypass}. This is the opposite policy of the rate-limit
store (L{llmedge.limits.store.StoreUnavailable}, which refuses), because a
missing cache costs money and latency while a missing limit costs safety.

Every method returns a L{Deferred} so that a networked store and the
in-memory one look the same to the caller; the memory store returns ones
that have already fired. Values are opaque bytes (the caller serialises its
own entries) and keys are the hex digests of L{llmedge.cache.key}, never
request bodies.
"""

from __future__ import annotations

from zope.interface import Interface


class CacheUnavailable(Exception):
    """
    The backend cannot answer now; the caller goes upstream (bypass).

    Raised (as a failed L{Deferred}) by L{ICacheStore.get} and
    L{ICacheStore.put} instead of any backend-specific error, so that the
    caller needs one errback, and so that no backend error ever reaches a
    client as a 5xx: a cache that cannot answer must never fail a request.
    """


class ICacheStore(Interface):
    """
    Keep opaque answers under digest keys for a bounded time.
    """

    def get(key):
        """
        The stored value, or L{None} (absent or expired).

        An expired entry is indistinguishable from an absent one: the
        caller only ever needs "answer from here" or "go upstream".

        @param key: A digest made by L{llmedge.cache.key.cache_key}.
        @type key: L{str}
        @rtype: L{Deferred} firing with L{bytes} or L{None}, or failing with
            L{CacheUnavailable}.
        """

    def put(key, value, ttl):
        """
        Store C{value} under C{key} for C{ttl} seconds, replacing any value
        already there.

        A store may decline to keep a value (too large for its bound, a
        non-positive C{ttl}) without failing: a later L{get} then misses,
        which is always a correct answer for a cache.

        @type key: L{str}
        @type value: L{bytes}
        @type ttl: L{float}
        @rtype: L{Deferred} firing with L{None}, or failing with
            L{CacheUnavailable}.
        """

    def stats():
        """
        What this store holds, for the metrics.

        @return: C{{'bytes': int, 'entries': int, 'evictions': int}} held by
            this store. A shared store (Redis) reports what this process
            knows, which may be zeros.
        @rtype: L{dict}
        """
