# -*- test-case-name: tests.unit.test_concurrency -*-
"""
At most so many requests in flight per API key.

A rate limit bounds how often a key may start requests; it does not bound
how many it keeps open at once, and LLM requests are long (a stream can
last minutes). A key that opens hundreds of streams at once would hold
that many upstream connections and provider slots. L{ConcurrencyLimited}
refuses a key's request with 429 while the key already has
C{max_concurrent_requests} in flight here, and counts a request out when it
ends, however it ends (finished, failed, or its client gone:
C{notifyFinish} fires in every case).

The counts live in a L{llmedge.limits.inflight} counter: this process's,
or, with C{--workers}, a table all workers share, so the bound holds for
the instance. Several instances behind a load balancer each hold their own
count.
"""

from __future__ import annotations

from twisted.web.resource import IResource

from llmedge.errors import APIError, too_many_in_flight
from llmedge.limits.inflight import LocalInFlight
from llmedge.web.wrapper import Wrapper




class ConcurrencyLimited(Wrapper):
    """
    Refuse a key's request while it has its bound of requests in flight.

    @param default: the bound for keys that set none (0: no bound).
    """

    def __init__(self, wrapped: IResource, default: int = 0, counter=None) -> None:
        super().__init__(wrapped)
        self._default = default
        #: The counts; the service keeps one across reloads.
        self.counter = LocalInFlight() if counter is None else counter

    def check(self, request) -> APIError | None:
        key = request.api_key
        if key is None:
            return None
        bound = key.max_concurrent_requests or self._default
        if not bound:
            return None
        if not self.counter.enter(key.id, bound):
            return too_many_in_flight(bound)
        request.notifyFinish().addBoth(lambda _: self.counter.leave(key.id))
        return None
