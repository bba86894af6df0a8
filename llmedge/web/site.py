# -*- test-case-name: tests.unit.test_request -*-
"""
L{EdgeSite}: the Twisted Web site every listener serves.

It carries what the per-request object needs from the service (the body
limit, the reactor for timers, the source of request ids) so that
L{llmedge.web.request.EdgeRequest} needs no globals, and what each
connection needs (L{llmedge.web.channel}: the header and body timeouts), and
it bounds the number of connections open at once.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Site

from llmedge.errors import raw_response, too_many_connections
from llmedge.observe.recorder import Recorder
from llmedge.randomness import random_bytes as _random_bytes, random_hex
from llmedge.web.channel import EdgeChannel, EdgeConnection
from llmedge.web.request import LINGER_SECONDS, EdgeRequest


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
    @ivar header_timeout: seconds a request's head may take (0: no bound).
    @ivar body_timeout: seconds a request's body may take (0: no bound).
    @ivar max_connections: connections served at once (0: no bound); past
        it a new connection is answered 503 and closed.
    @ivar http2_max_concurrent_streams: streams an HTTP/2 connection may
        have open at once (L{llmedge.web.h2}); past it a stream is refused.
    """

    _log = Logger()

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
        header_timeout: float = 0.0,
        body_timeout: float = 0.0,
        max_connections: int = 0,
        http2_max_concurrent_streams: int = 100,
    ) -> None:
        super().__init__(resource, reactor=reactor)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.http2_max_concurrent_streams = http2_max_concurrent_streams
        self._refusing = 0
        self._refusal_logged = float("-inf")
        #: The connections open now (L{EdgeConnection}s), for draining.
        self.open_connections: set = set()
        #: Set when the service stops: requests get C{Connection: close}.
        self.draining = False
        self.max_request_size = max_request_size
        self.recorder = Recorder(reactor, None) if recorder is None else recorder
        self.generate_traces = generate_traces
        self.make_request_id = make_request_id
        self.random_bytes = random_bytes

    @property
    def connections(self) -> int:
        """
        How many connections are open now.
        """
        return len(self.open_connections)

    def log(self, request) -> None:
        """
        Replace Twisted's access log line with llmedge's record of the
        request (metrics and one structured event).
        """
        request._record()

    def protocol(self) -> EdgeConnection:
        """
        Build Twisted's per-connection wrapper (kept: it switches to HTTP/2
        when TLS negotiates it) around an L{EdgeChannel}.
        """
        return EdgeConnection(EdgeChannel())

    def buildProtocol(self, addr):
        """
        A channel for a new connection, or, past C{max_connections}, a
        protocol that answers 503 and closes; past twice the limit (a
        flood: even refusals cost a socket while they linger) the
        connection is closed at once.
        """
        if self.max_connections and self.connections >= self.max_connections:
            self.recorder.refused("too_many_connections")
            now = self.reactor.seconds()
            if now - self._refusal_logged >= REFUSAL_LOG_SECONDS:
                self._refusal_logged = now
                self._log.warn(
                    "Refusing connections: {open} open, the most SERVER_MAX_CONNECTIONS "
                    "allows (said at most once a minute; see llmedge_refused_total)",
                    open=self.connections)
            # (Not None, which means "close" to a TCP port but which a TLS
            # wrapping factory would wrap and fail on.)
            return _Refusal(self, answer=self._refusing < self.max_connections)
        return super().buildProtocol(addr)


#: Refused connections are logged at most this often.
REFUSAL_LOG_SECONDS = 60.0




class _Refusal(Protocol):
    """
    A connection past the site's limit: answered 503 at once, half-closed,
    what it sends discarded, dropped after L{LINGER_SECONDS}; or, when
    C{answer} is false, dropped at once.
    """

    _linger: IDelayedCall | None = None

    def __init__(self, site: EdgeSite, answer: bool = True) -> None:
        self._site = site
        self._answer = answer

    def connectionMade(self) -> None:
        transport = self.transport
        if not self._answer:
            transport.abortConnection()
            return
        self._site._refusing += 1
        request_id = self._site.make_request_id().encode("ascii")
        transport.write(raw_response(
            too_many_connections(self._site.max_connections),
            [(b"x-request-id", request_id)]))
        getattr(transport, "loseWriteConnection", transport.loseConnection)()
        self._linger = self._site.reactor.callLater(LINGER_SECONDS, transport.abortConnection)

    def connectionLost(self, reason) -> None:
        if self._answer:
            self._site._refusing -= 1
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
