# -*- test-case-name: tests.unit.test_client -*-
"""
One upstream HTTP/1.1 connection: it writes a request (straight to the
socket when it can, L{llmedge.direct_send}), parses the response head in one pass,
decodes the body by slicing the bytes as they arrive (C{Content-Length},
chunked (L{chunked}) or ended by the close), and goes back to the pool
when the response is over and the connection can carry another.

The body goes to the response through L{IBodySink}; the response steers
this connection through L{IBodySource} (L{interfaces}). Every byte the
upstream sends lands in a bounded place: the head in a buffer of at most
L{MAX_HEAD} bytes, a chunk-size line in at most
L{chunked.MAX_CHUNK_LINE}, trailers in at most L{MAX_HEAD}; body bytes go
straight to the sink, which bounds what it keeps.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse
from zope.interface import implementer

from llmedge.direct_send import RequestWriter
from llmedge.providers.client.chunked import ENDED, MORE, OVERRUN, ChunkedDecoder
from llmedge.providers.client.interfaces import IBodySink, IBodySource, IIdlePool
from llmedge.providers.client.wire import (
    MAX_HEAD,
    HeadTooLarge,
    MalformedResponse,
    blank_line,
    parse_head,
)

# Connection states.
WAITING, BODY, IDLE, DEAD = range(4)


class ConnectionFactory(Factory):
    """
    Hands one L{Connection}, made before connecting, to the endpoint.
    """

    noisy = False

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def buildProtocol(self, addr):
        connection, self._connection = self._connection, None
        if connection is None or connection.state == DEAD:
            return None  # the request was cancelled meanwhile
        return connection


@implementer(IBodySource)
class Connection(Protocol):
    """
    One upstream connection, L{WAITING} for a response head, reading a
    L{BODY}, L{IDLE} in the pool, or L{DEAD}: closing, closed, or never to
    be reused.

    @ivar key: the pool's key for the host it is connected to.
    @ivar idle_since: when it went back to the pool.
    """

    def __init__(self, pool: IIdlePool, key: tuple) -> None:
        self._pool = pool
        self.key = key
        self.state = WAITING
        self._result: Deferred | None = None
        self._pending: bytes | None = None  # the request, until connected
        self._writer: RequestWriter | None = None  # once connected
        self._connecting: Deferred | None = None
        self._method = b""
        self._head = b""  # the response head so far
        self._seen = False  # whether any byte of a response arrived
        self._sink: IBodySink | None = None
        self._persistent = False
        self._decode = None  # the body decoder
        self._remaining = 0  # bytes left of the body or of the chunk
        self._chunks: ChunkedDecoder | None = None
        self._paused = False  # by the sink
        self._aborted = False
        self._closed: list[Deferred] = []
        self.idle_since = 0.0

    # Sending

    def connect(self, endpoint, method: bytes, data: bytes) -> Deferred[IResponse]:
        """
        Connect through C{endpoint} and send C{data}, the whole request.
        """
        self._method = method
        self._pending = data
        result = self._result = Deferred(self._cancel)
        self._connecting = endpoint.connect(ConnectionFactory(self))
        self._connecting.addCallbacks(self._connected, self._connectFailed)
        return result

    def _connected(self, _) -> None:
        self._connecting = None

    def _connectFailed(self, reason: Failure) -> None:
        self._connecting = None
        result, self._result = self._result, None
        self.state = DEAD
        if result is not None:
            result.errback(reason)

    def connectionMade(self) -> None:
        nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if nodelay is not None:
            nodelay(True)  # the request is one write: send it now
        self._writer = RequestWriter(self.transport)
        data, self._pending = self._pending, None
        if self.state == WAITING and data:
            self._writer.write(data)

    def send(self, method: bytes, data: bytes) -> Deferred[IResponse]:
        """
        Send another request on this idle, connected connection.
        """
        self.state = WAITING
        self._method = method
        self._seen = False
        result = self._result = Deferred(self._cancel)
        self._writer.write(data)
        return result

    def _cancel(self, result: Deferred) -> None:
        # Deferred.cancel fails the request with CancelledError itself.
        if self._result is not result:
            return
        self._result = None
        self.state = DEAD
        if self.transport is not None:
            self.transport.abortConnection()
        elif self._connecting is not None:
            self._connecting.cancel()

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        state = self.state
        if state == BODY:
            if not self._aborted:
                self._decode(data)
        elif state == WAITING:
            self._headReceived(data)
        elif state == IDLE:
            # Bytes no request asked for: nothing more on this connection
            # can be trusted to belong to the right request.
            self._pool.forget(self)
            self.state = DEAD
            self.transport.abortConnection()

    def _headReceived(self, data: bytes) -> None:
        self._seen = True
        buffer = self._head + data if self._head else data
        while True:
            end, start = blank_line(buffer)
            if end < 0 or end > MAX_HEAD:
                if end > MAX_HEAD or len(buffer) > MAX_HEAD:
                    self._failHead(HeadTooLarge())
                else:
                    self._head = buffer
                return
            try:
                response, length, chunked, persistent = parse_head(buffer[:end], self._method)
            except MalformedResponse as e:
                self._failHead(e)
                return
            buffer = buffer[start:]
            if response is not None:
                break
            if not buffer:  # a 1xx: the response is still to come
                self._head = b""
                return
        self._head = b""
        result, self._result = self._result, None
        self._sink = response
        self._persistent = persistent
        self.state = BODY
        self._aborted = False
        response.bodyStarted(self)
        if length == 0:
            self._complete(not buffer)
        elif chunked:
            self._decode = self._chunked
            self._chunks = ChunkedDecoder()
            if buffer:
                self._chunked(buffer)
        elif length is None:
            self._decode = self._received
            if buffer:
                self._received(buffer)
        else:
            self._decode = self._identity
            self._remaining = length
            if buffer:
                self._identity(buffer)
        # Last: application code runs from here, and may already find the
        # body complete and this connection back in the pool.
        result.callback(response)

    def _failHead(self, error: Exception) -> None:
        result, self._result = self._result, None
        self.state = DEAD
        self.transport.abortConnection()
        result.errback(Failure(ResponseFailed([Failure(error)])))

    def _identity(self, data: bytes) -> None:
        remaining = self._remaining - len(data)
        if remaining > 0:
            self._remaining = remaining
            self._sink.bodyData(data)
            return
        extra = remaining < 0
        if extra:
            data = data[:self._remaining]
        self._remaining = 0
        self._sink.bodyData(data)
        if not self._aborted and self.state == BODY:
            self._complete(not extra)

    def _chunked(self, data: bytes) -> None:
        body, after = self._chunks.feed(data)
        if body:
            self._sink.bodyData(body)
        if self._aborted or self.state != BODY or after is MORE:
            return
        if after is ENDED or after is OVERRUN:
            self._complete(after is ENDED)
        else:
            self._failBody(after)

    def _received(self, data: bytes) -> None:
        self._sink.bodyData(data)

    def _complete(self, reusable: bool) -> None:
        """
        The body is all here: back to the pool if it may carry another
        request, closed otherwise; then the sink learns it.
        """
        sink, self._sink = self._sink, None
        self._decode = None
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()  # an idle connection must see a close
        self.state = IDLE
        if not (reusable and self._persistent and self._pool.release(self)):
            self.state = DEAD
            self.transport.loseConnection()
        sink.bodyEnded(None)

    def _failBody(self, error: Exception) -> None:
        sink, self._sink = self._sink, None
        self.state = DEAD
        self.transport.abortConnection()
        sink.bodyEnded(Failure(ResponseFailed([Failure(error)], sink)))

    # IBodySource

    def pauseBody(self) -> None:
        if self.state == BODY and not self._aborted and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def resumeBody(self) -> None:
        if self.state == BODY and not self._aborted and self._paused:
            self._paused = False
            self.transport.resumeProducing()

    def abortBody(self) -> None:
        if self.state == BODY and not self._aborted:
            self._aborted = True
            self.transport.abortConnection()

    # Ending

    def close(self) -> None:
        """
        Close an idle connection.
        """
        self.state = DEAD
        self.transport.loseConnection()

    def whenClosed(self) -> Deferred[None]:
        """
        A Deferred that fires once the connection is closed.
        """
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        return closed

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        state, self.state = self.state, DEAD
        if state == IDLE:
            self._pool.forget(self)
        elif state == WAITING:
            result, self._result = self._result, None
            if result is not None:
                if self._head:
                    reason = Failure(MalformedResponse(
                        "the connection closed in the middle of the response head"))
                kind = ResponseFailed if self._seen else ResponseNeverReceived
                result.errback(Failure(kind([reason])))
        elif state == BODY:
            sink, self._sink = self._sink, None
            if self._decode == self._received and not self._aborted:
                end = Failure(PotentialDataLoss())
            else:
                end = Failure(ResponseFailed([reason], sink))
            sink.bodyEnded(end)
        closed, self._closed = self._closed, []
        for d in closed:
            d.callback(None)
