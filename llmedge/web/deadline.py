# -*- test-case-name: tests.unit.test_deadline -*-
"""
L{Deadline}: a time limit on everything a request makes llmedge do.

The wrapper only sets the request's deadline; the bound is enforced on the
work itself: every Deferred a handler hands to L{EdgeRequest.track} gets
C{addTimeout} for the time left. On expiry the Deferred is cancelled, so the
provider's canceller stops what it started (a timer, an upstream
connection), and the handler answers 504, or, if a stream already started,
ends it with an error event.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource

from llmedge.web.wrapper import Wrapper


class Deadline(Wrapper):
    """
    Give each request C{seconds} from the moment it reaches the wrapper.
    """

    def __init__(self, wrapped: IResource, seconds: float, clock: IReactorTime) -> None:
        super().__init__(wrapped)
        self.seconds = seconds
        self._clock = clock

    def check(self, request) -> None:
        request.set_deadline(self._clock, self._clock.seconds() + self.seconds)
        return None
