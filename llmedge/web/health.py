# -*- test-case-name: tests.unit.test_resources -*-
"""
C{/health}, C{/health/live} and C{/health/ready}: cheap, public answers for
load balancers and orchestrators.

C{live} says only that the reactor turns (it answered); C{ready} says whether
this instance should get traffic. Both are separate from C{/health} so a
probe can ask the question it means.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from twisted.internet.interfaces import IReactorTime

from llmedge import __version__
from llmedge.web.resource import Endpoint, Leaf, write_json


class Live(Leaf):
    def render_GET(self, request) -> bytes:
        return write_json(request, {"status": "alive"})


class Ready(Leaf):
    """
    C{200} while this instance should get traffic; C{503} with the reason
    while it should not: it is draining (stopping), or no configured
    provider is reachable (L{llmedge.probe}).

    @param unready: returns why the instance is not ready, or L{None}.
        Cheap: it reads cached state, never calls out.
    """

    def __init__(self, unready: Callable[[], str | None] = lambda: None) -> None:
        super().__init__()
        self._unready = unready

    def render_GET(self, request) -> bytes:
        reason = self._unready()
        if reason is None:
            return write_json(request, {"status": "ready"})
        return write_json(request, {"status": "unready", "reason": reason}, 503)


class Health(Endpoint):
    """
    C{GET /health}: status, version and the server's clock.
    """

    def __init__(self, clock: IReactorTime,
                 unready: Callable[[], str | None] = lambda: None) -> None:
        super().__init__()
        self._clock = clock
        self.putChild(b"live", Live())
        self.putChild(b"ready", Ready(unready))

    def render_GET(self, request) -> bytes:
        now = datetime.fromtimestamp(self._clock.seconds(), UTC)
        return write_json(
            request,
            {
                "status": "healthy",
                "version": __version__,
                "timestamp": now.isoformat().replace("+00:00", "Z"),
            },
        )
