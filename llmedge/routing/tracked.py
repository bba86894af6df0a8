# -*- test-case-name: tests.unit.test_attempts,tests.unit.test_sse_batches -*-
"""
L{Tracked}: a provider's event stream, counted as in flight on its
deployment until it ends.

A stream's provider call is over when its head arrives, long before the
stream is: least-busy routing must see a deployment busy with streams for
as long as they run, so the count is given back only when the stream ends
(delivered, failed, or stopped because the client left).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from llmedge.providers.wrapped import WrappedStream
from llmedge.routing.health import DeploymentHealth


class Tracked(WrappedStream):
    """
    C{stream}, counted in C{health.in_flight} until it ends.
    """

    def __init__(self, stream, health: DeploymentHealth) -> None:
        super().__init__(stream)
        self._health = health
        self._counted = True

    def start(
        self, receiver: Callable[[bytes], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        done = super().start(receiver, flush)

        def ended(result):
            self._release()
            return result

        return done.addBoth(ended)

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self._health.in_flight -= 1

    def stopProducing(self) -> None:
        self._release()
        self._stream.stopProducing()
