# -*- test-case-name: tests.unit.test_h2 -*-
"""
L{EdgeH2Connection}: HTTP/2 with the protections HTTP/1.1 has.

Twisted serves HTTP/2 through its own C{H2Connection} (over the C{h2}
library), which bounds little of what a hostile client controls. Here, on
each connection:

  - a request's headers are held to HTTP/1.1's bounds
    (L{llmedge.web.h2_frames}: 16 KiB, 500 fields), advertised in
    C{SETTINGS_MAX_HEADER_LIST_SIZE}; a stream over them is answered 431
    C{headers_too_large}. A header block that cannot be decoded within
    bounds (over 32 KiB encoded or 16 frames, a CONTINUATION flood, which
    L{llmedge.web.h2_frames.HeaderBlocks} sees coming; or over 64 KiB
    decoded, which C{hpack} refuses) ends the connection with GOAWAY
    C{ENHANCE_YOUR_CALM}: HPACK's state is the connection's, so a block left
    undecoded leaves no stream on it that could be answered;
  - a header block must be whole within the site's C{header_timeout} of its
    first frame (else GOAWAY, for the same reason: the stream does not exist
    until its block is whole), and a request's body within C{body_timeout}
    of its headers (else 408 C{request_timeout} on that stream);
  - at most the site's C{http2_max_concurrent_streams} streams are served
    at once, advertised in C{SETTINGS_MAX_CONCURRENT_STREAMS} and enforced
    from the first frame, before the client has acknowledged the setting:
    a stream past it is reset C{REFUSED_STREAM} (h2 itself would end the
    whole connection);
  - streams reset by the client while in progress, refused or answered
    431 are counted (L{GLITCH_BURST} at once, L{GLITCH_RATE} a second over
    time); past that (Rapid Reset, CVE-2023-44487) the connection gets GOAWAY
    C{ENHANCE_YOUR_CALM} and is closed; a reset stream's request is lost, so
    its work is cancelled (L{llmedge.web.request.EdgeRequest.track});
  - a client that does not read is not read either: while the transport's
    buffer is over its mark, nothing more is parsed (a PING or SETTINGS
    flood would otherwise be answered into memory);
  - priority signals (deprecated by RFC 9113) are ignored: Twisted keeps a
    tree node for every stream a PRIORITY frame names and fails with a
    traceback at the 1001st;
  - h2 remembers L{CLOSED_STREAMS_REMEMBERED} closed streams, not 65536.

Refusals answered on a stream close only that stream; the others go on.
"""

from __future__ import annotations

import h2.connection
import h2.errors
import h2.exceptions
from h2.settings import SettingCodes, Settings
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web._http2 import H2Connection

from llmedge.errors import APIError, headers_too_large, request_timeout
from llmedge.limits.gcra import Limit, decide
from llmedge import twisted_insides
from llmedge.web.h2_frames import (
    MAX_DECODED_HEADER_LIST_SIZE,
    MAX_HEADER_LIST_SIZE,
    HeaderBlocks,
    headers_over_bounds,
)
from llmedge.web.request import LINGER_SECONDS
from llmedge.web.unread import Unread

#: Streams reset by the client, refused or answered 431 that a connection
#: may have: this many at once, then this many a second (a GCRA meter).
GLITCH_BURST = 200
GLITCH_RATE = 10
GLITCHES = Limit(per_minute=60 * GLITCH_RATE, burst=GLITCH_BURST)
#: How many closed streams h2 remembers (to tell a frame that crossed the
#: stream's end from an error): h2's own 65536 make 7.5 MiB on a connection
#: that served that many; this bounds it to some 230 KiB, twice the largest
#: stream cap.
CLOSED_STREAMS_REMEMBERED = 2000


class EdgeH2Connection(Unread, H2Connection):
    """
    Twisted's HTTP/2 connection with llmedge's bounds (see the module).
    """

    #: Twisted's undocumented insides relied on, alike from Twisted 24.7 to
    #: 26.10 (tests.unit.test_h2 checks that each is there and behaves as
    #: used here, so an upgrade that changes one fails a test naming it):
    #:   - H2Connection._requestReceived, _requestDataReceived,
    #:     _requestEnded, _requestAborted, _handlePriorityUpdate: its
    #:     C{dataReceived} hands each h2 event of these kinds to the method
    #:     of that name, which llmedge overrides;
    #:   - H2Connection._requestDone(streamID): forgets a stream;
    #:   - H2Connection._tryToWriteControlData(): writes h2's pending
    #:     frames, or holds them while the transport is paused;
    #:   - H2Connection.connectionLost's C{_cancelTimeouts}: False when
    #:     Twisted ends the connection itself (the idle timer stays armed);
    #:   - H2Stream._request: the stream's request;
    #:   - H2Connection.conn (public): made in C{__init__}, used from
    #:     C{connectionMade} on, so replaced in between;
    #:   - _GenericHTTPChannelProtocol._channel, _negotiatedProtocol,
    #:     _requestFactory, _site, _factory, _timeOut, _callLater, and
    #:     HTTPChannel._networkProducer: what L{switch_to_h2} moves over
    #:     (L{SWITCH_INSIDES}).
    TWISTED_INSIDES = twisted_insides.H2

    _closing = False
    _header_timer: IDelayedCall | None = None
    _linger: IDelayedCall | None = None

    def __init__(self, reactor: IReactorTime) -> None:
        super().__init__(reactor)
        self.conn = _BoundedH2(config=self.conn.config)  # not used yet
        self._clock = reactor
        self._blocks = HeaderBlocks()
        self._glitches: float | None = None  # the meter's state (a GCRA TAT)
        self._body_timers: dict[int, IDelayedCall] = {}
        self._held: list[bytes] = []

    @property
    def max_concurrent_streams(self) -> int:
        return getattr(self.site, "http2_max_concurrent_streams", 100)

    def connectionMade(self) -> None:
        # The SETTINGS frame says the bounds llmedge enforces itself; h2 is
        # then told looser ones, so that it does not end the connection where
        # llmedge answers the stream (h2 applies its settings when the client
        # acknowledges them, and ends the connection at either bound).
        self.conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: self.max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
        })
        super().connectionMade()
        self.conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
            SettingCodes.MAX_HEADER_LIST_SIZE: MAX_DECODED_HEADER_LIST_SIZE,
        })
        self.conn.decoder.max_header_list_size = MAX_DECODED_HEADER_LIST_SIZE

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._output_blocked:
            self._held.append(data)  # parsed once the client reads
            return
        if not self._blocks.feed(data):
            self._refuse_connection("headers_too_large", b"header block too large")
            return
        super().dataReceived(data)
        self._watch_header_block()

    def _watch_header_block(self) -> None:
        """
        Time a header block from its first frame to its end.
        """
        if self._closing or not self._blocks.open:
            self._stop_header_timer()
        elif self._header_timer is None:
            self._header_timer = self._later(
                getattr(self.site, "header_timeout", 0), self._headers_too_slow)

    # -- h2 events (called by H2Connection.dataReceived) -----------------------

    def _requestReceived(self, event) -> None:
        if self._closing:
            return
        stream_id = event.stream_id
        if len(self.streams) >= self.max_concurrent_streams:
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            self._refused("too_many_streams")
            self._glitch()
            return
        if headers_over_bounds(event.headers):
            self._answer(stream_id, headers_too_large())
            self._refused("headers_too_large")
            self._glitch()
            return
        super()._requestReceived(event)
        if event.stream_ended is None:
            timer = self._later(getattr(self.site, "body_timeout", 0), self._body_too_slow,
                                stream_id)
            if timer is not None:
                self._body_timers[stream_id] = timer

    def _requestDataReceived(self, event) -> None:
        if event.stream_id in self.streams and not self._closing:
            super()._requestDataReceived(event)
        elif not self._closing:
            # A stream refused or answered already: its data is dropped, and
            # the connection's window handed back so the others go on.
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _requestEnded(self, event) -> None:
        self._stop_body_timer(event.stream_id)
        if event.stream_id in self.streams and not self._closing:
            super()._requestEnded(event)

    def _requestAborted(self, event) -> None:
        self._stop_body_timer(event.stream_id)
        if event.stream_id not in self.streams or self._closing:
            return
        if self._glitch():
            super()._requestAborted(event)

    def _handlePriorityUpdate(self, event) -> None:
        pass  # see the module's docstring

    # -- back-pressure ---------------------------------------------------------

    def pauseProducing(self) -> None:
        """
        The transport's buffer is over its mark: Twisted holds the
        connection's output; stop reading it too, and hold, unparsed, what
        already arrived. A header block's time does not run meanwhile.
        """
        if self._output_blocked:
            return  # (Twisted's would drop the Deferred its sending loop waits on)
        super().pauseProducing()
        self._output_blocked = True
        self._stop_header_timer()
        producer = IPushProducer(self.transport, None)
        if producer is not None:
            producer.pauseProducing()

    def resumeProducing(self) -> None:
        self._output_blocked = False
        super().resumeProducing()
        if self._output_blocked or self._closing:
            return
        producer = IPushProducer(self.transport, None)
        if producer is not None:
            producer.resumeProducing()
        held, self._held = b"".join(self._held), []
        if held:
            self.dataReceived(held)
        else:
            self._watch_header_block()

    def connectionLost(self, reason, _cancelTimeouts: bool = True) -> None:
        self._closing = True
        self._output_blocked = False  # no longer counted as unread
        self._stop_header_timer()
        for stream_id in list(self._body_timers):
            self._stop_body_timer(stream_id)
        if _cancelTimeouts and self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason, _cancelTimeouts=_cancelTimeouts)

    # -- refusals --------------------------------------------------------------

    def _glitch(self) -> bool:
        """
        Count a stream that ended without a request served; past the
        meter's bound, end the connection (GOAWAY C{ENHANCE_YOUR_CALM}).

        @return: whether the connection goes on.
        """
        decision = decide(self._glitches, self._clock.seconds(), GLITCHES)
        if decision.allowed:
            self._glitches = decision.tat
            return True
        self._refuse_connection("too_many_resets", b"too many streams reset or refused")
        return False

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self._refuse_connection("request_timeout", b"request headers did not arrive in time",
                                h2.errors.ErrorCodes.NO_ERROR)

    def _body_too_slow(self, stream_id: int) -> None:
        self._body_timers.pop(stream_id, None)
        stream = self.streams.get(stream_id)
        if stream is None or self._closing:
            return
        request = stream._request
        answered = request.startedWriting  # a 413 waiting for the body's end
        if not answered:
            request.code = 408
            exchange = getattr(request, "exchange", None)
            if exchange is not None:
                exchange.error_code = "request_timeout"
        stream.connectionLost(Failure(ConnectionLost("request body too slow")))
        self._requestDone(stream_id)
        if answered:
            self._reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        else:
            self._answer(stream_id, request_timeout("body"))
            self._refused("request_timeout")

    def _answer(self, stream_id: int, error: APIError) -> None:
        """
        Answer C{error} on a stream Twisted does not serve (any more), then
        reset it if the client is still sending (RFC 9113, 8.1): its body is
        not wanted. Without the window for the body, the status goes alone.
        """
        body = error.body()
        headers = [
            (b":status", b"%d" % (error.status,)),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % (len(body),)),
            *((name.lower(), value) for name, value in error.headers),
            (b"x-request-id", self.site.make_request_id().encode("ascii")),
        ]
        conn = self.conn
        try:
            fits = len(body) <= min(
                conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            conn.send_headers(stream_id, headers, end_stream=not fits)
            if fits:
                conn.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.ProtocolError:
            pass  # reset by the client meanwhile: no one to answer
        self._reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    def _reset(self, stream_id: int, code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass  # closed already, both ways
        self._tryToWriteControlData()

    def _refuse_connection(
        self, reason: str, why: bytes, code: int = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
    ) -> None:
        """
        Send GOAWAY, end every stream (their work is cancelled), close, and
        abort after L{LINGER_SECONDS} a client that does not read.
        """
        if self._closing:
            return
        self._closing = True
        self._stop_header_timer()
        self._refused(reason)
        self.conn.close_connection(error_code=code, additional_data=why)
        transport = self.transport
        # Straight to the transport: held frames are not flushed past here.
        transport.write(self.conn.data_to_send())
        # Over TLS, the close waits for the connection's producer to go.
        transport.unregisterProducer()
        transport.loseConnection()
        self._linger = self._clock.callLater(LINGER_SECONDS, transport.abortConnection)
        H2Connection.connectionLost(
            self, Failure(ConnectionLost(why.decode("ascii"))), _cancelTimeouts=False)

    def _refused(self, reason: str) -> None:
        recorder = getattr(self.site, "recorder", None)
        if recorder is not None:
            recorder.refused(reason)

    # -- timers ----------------------------------------------------------------

    def _later(self, seconds: float | None, call, *args) -> IDelayedCall | None:
        if not seconds:
            return None
        return self._clock.callLater(seconds, call, *args)

    def _stop_header_timer(self) -> None:
        timer, self._header_timer = self._header_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _stop_body_timer(self, stream_id: int) -> None:
        timer = self._body_timers.pop(stream_id, None)
        if timer is not None and timer.active():
            timer.cancel()


class _BoundedH2(h2.connection.H2Connection):
    """
    h2's connection, remembering fewer closed streams.
    """

    MAX_CLOSED_STREAMS = CLOSED_STREAMS_REMEMBERED


#: What L{switch_to_h2} uses of Twisted's C{_GenericHTTPChannelProtocol}
#: (and of the HTTP/1.1 channel it starts with), as Twisted's own switch does.
SWITCH_INSIDES = twisted_insides.SWITCH


def switch_to_h2(generic) -> None:
    """
    When TLS negotiated C{h2} for C{generic} (an L{EdgeConnection}, before
    its first bytes), swap its HTTP/1.1 channel for an L{EdgeH2Connection},
    as Twisted's C{_GenericHTTPChannelProtocol.dataReceived} swaps in its
    own C{H2Connection} (which could not be given the site's reactor). The
    HTTP/1.1 channel is told its connection is over, so its timers stop.
    """
    if generic._negotiatedProtocol is not None:
        return
    old = generic._channel
    if getattr(old.transport, "negotiatedProtocol", None) != b"h2":
        return
    network = old._networkProducer
    network.unregisterProducer()
    transport = old.transport
    old.connectionLost(Failure(ConnectionLost("switched to HTTP/2")))
    new = EdgeH2Connection(generic._site.reactor)
    new.requestFactory = generic._requestFactory
    new.site = generic._site
    new.factory = generic._factory
    new.timeOut = generic._timeOut
    new.callLater = generic._callLater
    generic._channel = new
    generic._negotiatedProtocol = b"h2"
    new.makeConnection(transport)
    network.registerProducer(new, True)
