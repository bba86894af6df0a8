# -*- test-case-name: tests.unit.test_request -*-
"""
L{EdgeSite}: the Twisted Web site every listener serves.

It carries what the per-request object needs from the service (the body
limit, the reactor for timers, the source of request ids) so that
L{llmedge.web.request.EdgeRequest} needs no globals.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from twisted.web.server import Site

from llmedge.observe.recorder import Recorder
from llmedge.randomness import random_bytes as _random_bytes, random_hex
from llmedge.web.request import EdgeRequest


def random_request_id() -> str:
    """
    A fresh request id in OpenAI's style (C{req_} and 32 hex digits).
    """
    return "req_" + random_hex(16)


class EdgeSite(Site):
    """
    A L{Site} building L{EdgeRequest}s and never showing tracebacks.

    @ivar max_request_size: the largest request body accepted, in bytes.
    @ivar make_request_id: makes an id for a request that brought none.
    @ivar recorder: turns each request's end into metrics and a log event.
    @ivar generate_traces: start a trace for requests that bring none.
    """

    requestFactory = EdgeRequest
    displayTracebacks = False
    noisy = False  # no "Starting factory" lines: the service logs its start

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        max_request_size: int,
        recorder: Recorder | None = None,
        generate_traces: bool = True,
        make_request_id: Callable[[], str] = random_request_id,
        random_bytes: Callable[[int], bytes] = _random_bytes,
    ) -> None:
        super().__init__(resource, reactor=reactor)
        self.max_request_size = max_request_size
        self.recorder = Recorder(reactor, None) if recorder is None else recorder
        self.generate_traces = generate_traces
        self.make_request_id = make_request_id
        self.random_bytes = random_bytes

    def log(self, request) -> None:
        """
        Replace Twisted's access log line with llmedge's record of the
        request (metrics and one structured event).
        """
        request._record()
