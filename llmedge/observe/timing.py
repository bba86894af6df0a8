# -*- test-case-name: tests.unit.test_observe -*-
"""
L{UpstreamTimer}: how long a provider call took, and how it ended.

The time spent waiting on the provider is what separates "the model is
slow" from "llmedge is slow": the access log and C{llmedge_overhead_seconds}
subtract it from the request's total.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from llmedge.observe.exchange import Exchange


class UpstreamTimer:
    """
    Started when the provider is called; records into an L{Exchange}.
    """

    __slots__ = ("_clock", "_exchange", "_started")

    def __init__(self, clock: IReactorTime, exchange: Exchange) -> None:
        self._clock = clock
        self._exchange = exchange
        self._started = exchange.upstream_started = clock.seconds()

    def first_event(self) -> None:
        """
        A stream delivered its first event.
        """
        if self._exchange.first_token_seconds is None:
            self._exchange.first_token_seconds = self._clock.seconds() - self._started

    def done(self, outcome: str, usage: object = None) -> None:
        """
        The call is over: C{ok}, C{timeout}, C{cancelled}, or how it failed
        (C{error}, C{unreachable}, C{malformed}, C{too_large}).
        """
        self._exchange.upstream_seconds = self._clock.seconds() - self._started
        self._exchange.outcome = outcome
        self._exchange.count_usage(usage)

    def failed(self, reason: Failure) -> None:
        if reason.check(TimeoutError):
            self.done("timeout")
        elif reason.check(CancelledError):
            self.done("cancelled")
        else:
            # Upstream errors say how the call failed (a host unreachable, an
            # answer malformed or too large); anything else is an error.
            self.done(getattr(reason.value, "outcome", None) or "error")
