# -*- test-case-name: tests.unit.test_ratelimit -*-
"""
L{RateLimited}: requests per key, with OpenAI's rate-limit headers.

Each request costs one unit of its key's bucket (its client address when
authentication is off). The decision comes from an L{IRateLimitStore}, so
the state can live in this process or be shared by many instances; the
algorithm (GCRA) is in L{llmedge.limits.gcra}.

Every response under the wrapper carries C{x-ratelimit-limit-requests} (the
bucket's size, the burst), C{x-ratelimit-remaining-requests} and
C{x-ratelimit-reset-requests} (the time until the bucket is full again, as
a duration such as C{250ms}); they are set before the wrapped resource
renders, so streams send them with their headers, before the first event.
A refused request gets 429 with C{Retry-After} in whole seconds. A store
that cannot decide and is told to refuse (L{StoreUnavailable}) gets 503.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.web.resource import IResource

from llmedge.errors import APIError, rate_limit_unavailable, rate_limited
from llmedge.limits.gcra import Decision, Limit, format_duration, retry_after_header
from llmedge.limits.store import IRateLimitStore, StoreUnavailable
from llmedge.web.wrapper import Wrapper


def client_bucket(request) -> str:
    """
    The bucket of an unauthenticated request: its client's address.
    """
    address = request.getClientAddress()
    return "addr:" + str(getattr(address, "host", None) or type(address).__name__)


class RateLimited(Wrapper):
    """
    Admit a request if its bucket has room; refuse it with 429 if not.

    @param default: the limit for requests whose key names none.
    """

    def __init__(self, wrapped: IResource, store: IRateLimitStore, default: Limit) -> None:
        super().__init__(wrapped)
        self._store = store
        self._default = default
        self._limits: dict[tuple[int | None, int | None], Limit] = {}

    def limit_for(self, key) -> Limit:
        """
        The limit of an L{ApiKey} (its own C{rpm}/C{burst} where set).
        """
        if key is None or (key.rpm is None and key.burst is None):
            return self._default
        shape = (key.rpm, key.burst)
        limit = self._limits.get(shape)
        if limit is None:
            limit = self._limits[shape] = Limit(
                per_minute=key.rpm or self._default.per_minute,
                burst=key.burst or self._default.burst,
            )
        return limit

    def check(self, request) -> Deferred[APIError | None]:
        key = request.api_key
        bucket = "key:" + key.id if key is not None else client_bucket(request)
        limit = self.limit_for(key)
        return self._store.acquire(bucket, limit).addCallbacks(
            self._answer, _unavailable, callbackArgs=(request, limit)
        )

    def _answer(self, decision: Decision, request, limit: Limit) -> APIError | None:
        headers = [
            (b"x-ratelimit-limit-requests", b"%d" % (limit.burst,)),
            (b"x-ratelimit-remaining-requests", b"%d" % (decision.remaining,)),
            (
                b"x-ratelimit-reset-requests",
                format_duration(decision.reset_after).encode("ascii"),
            ),
        ]
        if decision.allowed:
            for name, value in headers:
                request.setHeader(name, value)
            return None
        wait = retry_after_header(decision.retry_after)
        headers.append((b"Retry-After", b"%d" % (wait,)))
        return rate_limited(
            f"Rate limit reached for requests: {limit.burst} at once, refilling at "
            f"{limit.per_minute} per minute. Try again in "
            f"{format_duration(decision.retry_after)}.",
            headers,
        )


def _unavailable(failure) -> APIError:
    failure.trap(StoreUnavailable)
    return rate_limit_unavailable()
