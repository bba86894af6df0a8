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
    a byte, just a closed connection);
  - an HTTP/1.1 request without a C{Host} header, or any request with two,
    is a 400 C{bad_request} (RFC 9112, 3.2);
  - a client that does not read its answers is not read either. Twisted
    stops reading a connection whose unsent output passed the transport's
    high-water mark only between requests, and replays the requests
    pipelined behind one as soon as it is answered: requests answered at
    once (401, 404, 429) would be produced without end into a buffer
    nobody drains (CPU, memory, every other client's latency). Here, once the
    transport says its buffer is full (C{pauseProducing}), the connection is
    no longer read and what it pipelined is held, unparsed, until the
    client has read it all (C{resumeProducing}); a request already being
    answered goes on, its streaming producer paused as before. A held
    connection whose client never reads is closed by Twisted's idle
    timeout (the site's, 60 s: nothing is read, so nothing resets it), and
    aborted C{abortTimeout} (15 s) later when its output cannot go.

Answers are written by L{llmedge.web.sending.SendsAtOnce}: on a plain
socket, at once when nothing waits before them.

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
from llmedge import twisted_insides
from llmedge.web.drain import connection_closed
from llmedge.web.h2 import switch_to_h2
from llmedge.web.head import ReadsWholeHeads
from llmedge.web.request import LINGER_SECONDS
from llmedge.web.sending import SendsAtOnce
from llmedge.web.unread import Unread










class EdgeChannel(ReadsWholeHeads, SendsAtOnce, Unread, HTTPChannel):
    """
    An L{HTTPChannel} that refuses in OpenAI error JSON, bounds the time
    a request's head and body may take (the site's C{header_timeout} and
    C{body_timeout}, in seconds; 0 or L{None}: no bound), insists on one
    C{Host}, and reads no faster than its client reads.
    """

    #: Twisted's undocumented insides this class relies on, all alike from
    #: Twisted 24.7 to 26.10 (tests.unit.test_channel checks that each is
    #: there and behaves as used here, so an upgrade that changes one fails
    #: a test that names it):
    #:   - HTTPChannel._handlingRequest: a request is being answered (from
    #:     its last byte to C{requestDone}); meanwhile Twisted keeps what
    #:     follows in C{_dataBuffer}, reading on up to
    #:     C{_optimisticEagerReadSize} bytes, and C{requestDone} replays it;
    #:   - HTTPChannel._networkProducer: the transport, to stop and restart
    #:     reading (C{requestDone} leaves it paused while the transport has
    #:     paused the channel);
    #:   - HTTPChannel._version: the request line's version, until the
    #:     request is handed over;
    #:   - HTTPChannel._receivedHeaderSize, _receivedHeaderCount: the
    #:     current head's bytes and headers so far;
    #:   - HTTPChannel._respondToBadRequestAndDisconnect: called for every
    #:     malformed request;
    #:   - LineReceiver._buffer: bytes received and not parsed yet;
    #:   - LineReceiver.paused (public, but only LineReceiver.dataReceived's
    #:     loop reads it, HTTPChannel never sets it): while true nothing more
    #:     is parsed, and C{dataReceived(b"")} parses on.
    TWISTED_INSIDES = twisted_insides.CHANNEL

    _closing = False
    _awaiting_head = True
    _in_body = False
    _head_timer: IDelayedCall | None = None
    _body_timer: IDelayedCall | None = None
    _linger: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.start_sending()
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
            # Bytes held while the client does not read (pauseProducing)
            # wait on llmedge, not on the client: no head timer for them.
            if self._head_timer is None and not self.paused and (
                self._receivedHeaderSize or self._partial_line()
            ):
                self._start_head_timer()
        elif self._in_body and self._body_timer is None:
            self._body_timer = self._later(
                getattr(self.site, "body_timeout", None), self._body_too_slow)

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return  # lines already buffered when a refusal was made are not parsed
        if not self.read_whole_head(line):
            super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._closing:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        self._awaiting_head = False
        self._cancel_timers()
        if not self._one_host():
            self._refuse(bad_request())
            return
        super().allHeadersReceived()
        self._in_body = self.length != 0 and not self._closing

    def allContentReceived(self) -> None:
        if self._closing:
            return  # refused at the end of its head: never handed over
        self._in_body = False
        self._cancel_timers()
        super().allContentReceived()

    def requestDone(self, request) -> None:
        self.answered()
        # The next request's clock starts at its first byte, which may be
        # buffered already and replayed by super().requestDone.
        self._awaiting_head = True
        if self._output_blocked:
            # The client has not read this answer: hold what it pipelined
            # behind it (Twisted would replay it now) until it does.
            self.paused = True
        super().requestDone(request)

    # -- back-pressure -------------------------------------------------------

    def pauseProducing(self) -> None:
        """
        The transport's buffer passed its high-water mark. Twisted pauses
        a streaming response, and stops reading only between requests; stop
        reading in any case, and hold, unparsed, the requests already
        received but not yet begun.
        """
        self._output_blocked = True
        super().pauseProducing()
        self._networkProducer.pauseProducing()
        if not self._handlingRequest:
            self.paused = True

    def resumeProducing(self) -> None:
        """
        The client read everything: go on with what was held, in order,
        and read again (while a request is being answered, as far as
        Twisted reads ahead).
        """
        self._output_blocked = False
        super().resumeProducing()
        if self._output_blocked or self.transport.disconnecting:
            return  # full again already (a streaming response went on), or closing
        if self._handlingRequest:
            if sum(map(len, self._dataBuffer)) <= self._optimisticEagerReadSize:
                self._networkProducer.resumeProducing()
        elif self.paused:
            self.paused = False
            self.dataReceived(b"")

    def connectionLost(self, reason) -> None:
        self._output_blocked = False  # no longer counted as unread
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

    def _one_host(self) -> bool:
        """
        RFC 9112 (3.2): an HTTP/1.1 request carries one C{Host} header (an
        absolute-form target too), and no request two, even alike; HTTP/1.0
        may carry none.
        """
        hosts = self.requests[-1].requestHeaders.getRawHeaders(b"host", [])
        return len(hosts) == 1 or (not hosts and self._version != b"HTTP/1.1")

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
    Twisted's per-connection wrapper, in the site's C{open_connections}
    from start to loss, whichever protocol it speaks: HTTP/1.1
    (L{EdgeChannel}) or, when TLS negotiates C{h2}, HTTP/2
    (L{llmedge.web.h2.EdgeH2Connection}, swapped in here, not Twisted's).
    """

    _counted = False

    def makeConnection(self, transport) -> None:
        self._site.open_connections.add(self)
        self._site.recorder.connection(+1)
        self._counted = True
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        switch_to_h2(self)
        super().dataReceived(data)

    def connectionLost(self, reason) -> None:
        self._channel.connectionLost(reason)
        if self._counted:
            self._counted = False
            self._site.recorder.connection(-1)
            connection_closed(self._site, self)
