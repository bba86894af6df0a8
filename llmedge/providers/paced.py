# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
L{PacedStream}: an L{IEventStream} over events known in advance, paced by a
clock.

The mock provider streams through it, and so can fakes in tests: because it
yields to the reactor between events, a consumer's C{pauseProducing} really
holds the next event back, which is what back-pressure tests need to see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from llmedge.providers.base import IEventStream


@implementer(IEventStream)
class PacedStream:
    """
    Deliver pre-built events one per C{callLater}, so pausing between any
    two events is possible and stopping leaves no timer behind.

    @param reactor: provides C{callLater}; a L{Clock} in tests.
    @param interval: seconds between events (0 still yields to the reactor
        between events).
    @param events: the data of each event, in order.
    @param usage: the usage the events add up to, for the front's counts.
    """

    def __init__(
        self, reactor, interval: float, events: list[bytes], usage: dict | None = None
    ) -> None:
        self.usage = usage
        self.headers: tuple[tuple[bytes, bytes], ...] = ()
        self._reactor = reactor
        self._interval = interval
        self._events = deque(events)
        self._pending = None
        self._paused = False
        self._over = False
        self._done: Deferred[None] | None = None
        self._receiver: Callable[[bytes], None] | None = None

    def start(self, receiver: Callable[[bytes], None]) -> Deferred[None]:
        if self._over:
            return fail(CancelledError())
        self._receiver = receiver
        self._done = Deferred(lambda d: self.stopProducing())
        self._schedule()
        return self._done

    def _schedule(self) -> None:
        if self._done is None or self._over or self._paused or self._pending:
            return
        self._pending = self._reactor.callLater(self._interval, self._deliver)

    def _deliver(self) -> None:
        self._pending = None
        if self._events:
            try:
                self._receiver(self._events.popleft())
            except Exception:
                self._finish(Failure())
                return
        if not self._events:
            self._finish(None)
        else:
            self._schedule()

    def _finish(self, failure: Failure | None) -> None:
        if self._over:
            return
        self._over = True
        self._cancel_pending()
        if self._done is None:
            return
        if failure is None:
            self._done.callback(None)
        else:
            self._done.errback(failure)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel_pending()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._finish(Failure(CancelledError()))
