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

The count is per process: with C{--workers N}, each worker bounds the key's
requests it serves itself (so a key may have up to N times the bound in
flight on the instance).
"""

from __future__ import annotations

from twisted.web.resource import IResource

from llmedge.errors import APIError
from llmedge.web.wrapper import Wrapper


def too_many_in_flight(bound: int) -> APIError:
    return APIError(
        429,
        f"Too many requests in flight for this API key: at most {bound} at once. "
        "Wait for one to finish, then retry.",
        type="rate_limit_error",
        code="concurrency_limit_exceeded",
        headers=[(b"Retry-After", b"1")],
    )


class ConcurrencyLimited(Wrapper):
    """
    Refuse a key's request while it has its bound of requests in flight.

    @param default: the bound for keys that set none (0: no bound).
    """

    def __init__(self, wrapped: IResource, default: int = 0) -> None:
        super().__init__(wrapped)
        self._default = default
        #: key id -> requests in flight
        self.in_flight: dict[str, int] = {}

    def check(self, request) -> APIError | None:
        key = request.api_key
        if key is None:
            return None
        bound = key.max_concurrent_requests or self._default
        if not bound:
            return None
        count = self.in_flight.get(key.id, 0)
        if count >= bound:
            return too_many_in_flight(bound)
        self.in_flight[key.id] = count + 1
        request.notifyFinish().addBoth(self._ended, key.id)
        return None

    def _ended(self, _, key_id: str) -> None:
        count = self.in_flight.get(key_id, 0) - 1
        if count > 0:
            self.in_flight[key_id] = count
        else:
            self.in_flight.pop(key_id, None)
