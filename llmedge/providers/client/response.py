# -*- test-case-name: tests.unit.test_client -*-
"""
The response L{llmedge.providers.client} hands back: an L{IResponse} whose
body is kept until a protocol asks for it, then passed straight on; and
L{read_body}, which reads a body whole but never more than a bound.

Every buffer an upstream fills has a bound here. Before anyone reads the
body, at most L{MAX_BUFFER} bytes are kept: past that the connection stops
reading (TCP pushes back on the upstream) until a protocol is attached.
L{read_body} takes a limit: a body that says, or turns out, to be larger is
refused with L{BodyTooLarge} and its connection closed at once, so an
upstream that never ends its answer costs a bounded amount of memory and
no more reading.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

from llmedge.providers.client.interfaces import IBodySink, IBodySource
from llmedge.providers.client.pairs import HeaderPairs

#: Body bytes kept for a response whose body nobody reads yet; past this,
#: the connection stops reading until someone does.
MAX_BUFFER = 64 * 1024

#: The body's end, before a protocol needs it as a Failure.
_DONE = object()
#: Stands for the protocol of a body L{read_body} took whole.
_TAKEN = object()


class BodyTooLarge(Exception):
    """
    An upstream's body is larger than the reader's limit.

    @ivar limit: the limit, in bytes.
    @ivar declared: the body's C{Content-Length}, when that is what told.
    """

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(limit, declared)
        self.limit = limit
        self.declared = declared

    def __str__(self) -> str:
        if self.declared is not None:
            return f"a body of {self.declared} bytes, over the limit of {self.limit}"
        return f"a body over the limit of {self.limit} bytes"


@implementer(IResponse, IBodySink)
class Response:
    """
    A response head, and its body as it arrives: kept until
    L{deliverBody} gives it a protocol, then passed straight on.

    Its C{headers} are L{HeaderPairs}, not the L{Headers
    <twisted.web.http_headers.Headers>} L{IResponse} names: llmedge's
    own code is the only reader.
    """

    request = None
    previousResponse = None

    def __init__(self, version: tuple, code: int, phrase: bytes, headers: HeaderPairs) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = UNKNOWN_LENGTH
        self._source: IBodySource | None = None  # while the body is read
        self._data: list[bytes] | None = []  # None once a protocol has it all
        self._size = 0
        self._protocol = None
        self._end = None  # _DONE or a Failure, once the body ended
        self._held = False  # the buffer is full and nobody reads it
        self._paused = False  # by the body's protocol
        self._stopped = False  # source paused on our account

    def setPreviousResponse(self, response) -> None:
        self.previousResponse = response

    # IBodySink: what the connection tells us.

    def bodyStarted(self, source: IBodySource) -> None:
        self._source = source

    def bodyData(self, data: bytes) -> None:
        buffered = self._data
        if buffered is None:
            self._protocol.dataReceived(data)
            return
        buffered.append(data)
        self._size += len(data)
        if self._size > MAX_BUFFER and not self._held:
            self._held = True
            self._flow()

    def bodyEnded(self, reason: Failure | None) -> None:
        self._source = None
        self._stopped = False
        self._end = _DONE if reason is None else reason
        if self._data is None and self._protocol is not _TAKEN:
            self._protocol.connectionLost(_reason(self._end))

    def _flow(self) -> None:
        """
        Pause the source while the buffer is full or the protocol asked,
        resume it when neither holds.
        """
        stop = self._held or self._paused
        if stop != self._stopped and self._source is not None:
            self._stopped = stop
            if stop:
                self._source.pauseBody()
            else:
                self._source.resumeBody()

    def _stop(self) -> None:
        if self._source is not None:
            self._source.abortBody()

    # IResponse

    def deliverBody(self, protocol) -> None:
        """
        Connect C{protocol} to the body: C{dataReceived} with the body's
        bytes (de-chunked), then C{connectionLost} with L{ResponseDone},
        L{PotentialDataLoss} or L{ResponseFailed}. Its transport's
        C{pauseProducing}/C{resumeProducing} pause and resume reading the
        upstream socket; C{stopProducing} aborts the connection.
        """
        if self._protocol is not None:
            raise RuntimeError("the response body was already delivered")
        self._protocol = protocol
        self._held = False  # someone reads now; resumed below unless paused
        protocol.makeConnection(_BodyTransport(self))
        data, self._data = self._data, None
        end = self._end
        if data:
            protocol.dataReceived(data[0] if len(data) == 1 else b"".join(data))
        if end is not None:
            protocol.connectionLost(_reason(end))
        else:
            self._flow()

    def _take(self) -> bytes | None:
        """
        The whole body, if it is already here and nobody else read it.
        """
        end = self._end
        if self._protocol is not None or end is None:
            return None
        if end is not _DONE and not end.check(PotentialDataLoss):
            return None
        self._protocol = _TAKEN
        data, self._data = self._data, None
        return b"".join(data)


def _reason(end) -> Failure:
    return Failure(ResponseDone("Response body fully received")) if end is _DONE else end


class _BodyTransport:
    """
    What a body protocol sees as its transport: the upstream socket's flow
    control while the body is being read, nothing once it is complete (the
    connection may then be carrying another request).
    """

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def pauseProducing(self) -> None:
        response = self._response
        if not response._paused:
            response._paused = True
            response._flow()

    def resumeProducing(self) -> None:
        response = self._response
        if response._paused:
            response._paused = False
            response._flow()

    def stopProducing(self) -> None:
        self._response._stop()

    loseConnection = abortConnection = stopProducing


class _Collector(Protocol):
    """
    Gathers a body, up to C{limit} bytes, into one growing buffer.

    One buffer rather than a list of the pieces read: a large body then
    lives in one allocation, which the C library maps apart from its heap
    and gives back to the system whole when it is freed. Kept as tens of
    thousands of 64 KiB pieces, a body refused at a bound of 64 MiB left
    the heap that much larger for good (measured: bench/backdoor.py).
    """

    def __init__(self, limit: int | None) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        if self._limit is not None and len(self._buffer) + len(data) > self._limit:
            self._buffer = bytearray()
            self.transport.stopProducing()
            self.done.errback(BodyTooLarge(self._limit))
            return
        self._buffer += data

    def connectionLost(self, reason: Failure) -> None:
        if self.done.called:
            return
        buffer, self._buffer = self._buffer, bytearray()
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(bytes(buffer))
        else:
            self.done.errback(reason)

    def _cancel(self, done: Deferred) -> None:
        self._buffer = bytearray()
        if self.transport is not None:
            self.transport.stopProducing()


def body_here(response: IResponse, limit: int | None = None) -> bytes | None:
    """
    The whole body of C{response}, taken as L{read_body} would give it but
    without a Deferred, when it is all here already (most answers arrive
    with their head) and within C{limit}; L{None} in any other case, the
    response untouched, for L{read_body} to read it or say why not.
    """
    if type(response) is not Response or response._protocol is not None:
        return None
    end = response._end
    if end is None or (end is not _DONE and not end.check(PotentialDataLoss)):
        return None
    if limit is not None and response._size > limit:
        return None
    return response._take()


def read_body(response: IResponse, limit: int | None = None) -> Deferred[bytes]:
    """
    The whole body of C{response}; already fired when the body is all in
    (most answers arrive with their head). A body ended by the connection's
    close (L{PotentialDataLoss}) counts as whole, as in treq; any other end
    fails with its reason. Cancelling closes the connection.

    @param limit: the most bytes to read; a body declared or found larger
        fails with L{BodyTooLarge} as soon as that is known, its connection
        closed, what was read of it dropped.
    """
    if type(response) is Response:
        if limit is not None and response.length is not UNKNOWN_LENGTH \
                and response.length > limit:
            response._stop()
            return fail(BodyTooLarge(limit, response.length))
        body = response._take()
        if body is not None:
            if limit is not None and len(body) > limit:
                return fail(BodyTooLarge(limit))
            return succeed(body)
    collector = _Collector(limit)
    response.deliverBody(collector)
    return collector.done


def discard(response: IResponse) -> None:
    """
    Nobody will read C{response}'s body: close its connection now unless the
    body is already all here (the connection is then back in the pool), so
    an unread body holds neither a socket nor a buffer.
    """
    if type(response) is Response:
        if response._protocol is None:
            response._protocol, response._data = _TAKEN, None
        if response._end is None:
            response._stop()
        return
    response.deliverBody(_Discarder())


class _Discarder(Protocol):
    def makeConnection(self, transport) -> None:
        transport.stopProducing()
