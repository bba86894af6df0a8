# -*- test-case-name: tests.unit.test_channel -*-
"""
L{EdgeChannel}: the HTTP/1.1 connection, hardened against hostile clients.

Twisted's L{HTTPChannel} parses requests well but answers a malformed one
with a bare C{400 Bad Request} and no body, closes a connection whose one
line is too long without a word, and bounds a slow client only by an idle
timeout, which a client sending one byte a second never meets. Here:

  - every refusal made while parsing is OpenAI error JSON: 400
    C{bad_request} for a malformed request line, header or chunk (and for
    C{Content-Length} with C{Transfer-Encoding}, or two lengths: one request
    read two ways is how requests are smuggled), 414 C{uri_too_long} for a
    request line, 431 C{headers_too_large} for a header or a header block
    over Twisted's limits (16 KiB, 500 headers);
  - the request head must arrive in whole within C{header_timeout}
    seconds, counted from the connection's start (for its first request)
    or from the first byte of the request (for later ones: the wait between
    requests is Twisted's idle timeout), and the body within
    C{body_timeout} seconds of the head: a real bound, not an idle one.
    Past it the client gets a 408 C{request_timeout} (or, if it never sent
    a byte, just a closed connection).

After each refusal the connection is half-closed and what the client still
sends is discarded for L{LINGER_SECONDS}, so the client reads the answer
instead of a reset (as L{llmedge.web.request.EdgeRequest} does for a 413).
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

from llmedge.errors import (
    APIError,
    bad_request,
    headers_too_large,
    raw_response,
    request_timeout,
    uri_too_long,
)
from llmedge.web.drain import connection_closed
from llmedge.web.request import LINGER_SECONDS










class EdgeChannel(HTTPChannel):
    """
    An L{HTTPChannel} that refuses in OpenAI error JSON and bounds the time
    a request's head and body may take (the site's C{header_timeout} and
    C{body_timeout}, in seconds; 0 or L{None}: no bound).
    """

    _closing = False
    _awaiting_head = True
    _in_body = False
    _head_timer: IDelayedCall | None = None
    _body_timer: IDelayedCall | None = None
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_head_timer()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return  # discarded while lingering after a refusal
        super().dataReceived(data)
        if self._closing:
            return
        # A timer only for what this chunk left unfinished: a request that
        # arrives whole, the usual case, starts and cancels none.
        if self._awaiting_head:
            if self._head_timer is None and (self._receivedHeaderSize or self._partial_line()):
                self._start_head_timer()
        elif self._in_body and self._body_timer is None:
            self._body_timer = self._later(
                getattr(self.site, "body_timeout", None), self._body_too_slow)

    def lineReceived(self, line: bytes) -> None:
        # Lines already buffered when a refusal was made are not parsed.
        if not self._closing:
            super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._closing:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        self._awaiting_head = False
        self._cancel_timers()
        super().allHeadersReceived()
        self._in_body = self.length != 0 and not self._closing

    def allContentReceived(self) -> None:
        self._in_body = False
        self._cancel_timers()
        super().allContentReceived()

    def requestDone(self, request) -> None:
        # The next request's clock starts at its first byte, which may be
        # buffered already and replayed by super().requestDone.
        self._awaiting_head = True
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        self._cancel_timers()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    # -- refusals ------------------------------------------------------------

    def _respondToBadRequestAndDisconnect(self) -> None:
        """
        Twisted's hook for every malformed request: answer in JSON, with
        431 when it was Twisted's header limits that were crossed.
        """
        if self._receivedHeaderCount > self.maxHeaders or (
            self._receivedHeaderSize > self.totalHeadersSize
        ):
            self._refuse(headers_too_large())
        else:
            self._refuse(bad_request())

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line over C{MAX_LENGTH}: the request line when nothing of this
        request was counted yet, a header otherwise.
        """
        self._refuse(uri_too_long() if self._receivedHeaderSize == 0 else headers_too_large())

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._receivedHeaderSize == 0 and not self._partial_line():
            # Nothing of a request arrived: there is no one to answer.
            self._closing = True
            self.transport.loseConnection()
            return
        self._refuse(request_timeout("headers"))

    def _body_too_slow(self) -> None:
        self._body_timer = None
        request = self.requests[-1] if self.requests else None
        if getattr(request, "_refused", False):
            return  # already answered 413 and lingering
        if request is not None:
            request.code = 408
            exchange = getattr(request, "exchange", None)
            if exchange is not None:
                exchange.error_code = "request_timeout"
        self._refuse(request_timeout("body"))

    def _partial_line(self) -> bool:
        return bool(getattr(self, "_buffer", b""))

    def _refuse(self, error: APIError) -> None:
        """
        Answer C{error} straight on the transport, half-close, discard what
        follows, and drop the connection after L{LINGER_SECONDS}.
        """
        if self._closing:
            return
        self._closing = True
        self._cancel_timers()
        recorder = getattr(self.site, "recorder", None)
        if recorder is not None:
            recorder.refused(error.code)
        request_id = self.site.make_request_id().encode("ascii")
        transport = self.transport
        transport.write(raw_response(error, [(b"x-request-id", request_id)]))
        getattr(transport, "loseWriteConnection", transport.loseConnection)()
        self._linger = self.callLater(LINGER_SECONDS, transport.abortConnection)

    # -- timers --------------------------------------------------------------

    def _start_head_timer(self) -> None:
        self._head_timer = self._later(
            getattr(self.site, "header_timeout", None), self._head_too_slow)

    def _later(self, seconds: float | None, call) -> IDelayedCall | None:
        if not seconds:
            return None
        return self.callLater(seconds, call)

    def _cancel_timers(self) -> None:
        for name in ("_head_timer", "_body_timer"):
            timer = getattr(self, name)
            if timer is not None:
                if timer.active():
                    timer.cancel()
                setattr(self, name, None)


class EdgeConnection(_GenericHTTPChannelProtocol):
    """
    Twisted's per-connection wrapper (which swaps in an HTTP/2 connection
    when TLS negotiates C{h2}), in the site's C{open_connections} from start
    to loss, whichever protocol it speaks.
    """

    _counted = False

    def makeConnection(self, transport) -> None:
        self._site.open_connections.add(self)
        self._site.recorder.connection(+1)
        self._counted = True
        super().makeConnection(transport)

    def connectionLost(self, reason) -> None:
        self._channel.connectionLost(reason)
        if self._counted:
            self._counted = False
            self._site.recorder.connection(-1)
            connection_closed(self._site, self)
