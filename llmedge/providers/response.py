# -*- test-case-name: tests.unit.test_client -*-
"""
The response L{llmedge.providers.client} hands back: an L{IResponse} whose
body is kept until a protocol asks for it, then passed straight on, and
L{read_body}, which takes a body already complete at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from zope.interface import implementer

if TYPE_CHECKING:
    from llmedge.providers.client import _Connection

#: The body's end, before a protocol needs it as a Failure.
_DONE = object()
#: Stands for the protocol of a body L{read_body} took whole.
_TAKEN = object()


@implementer(IResponse)
class Response:
    """
    A response head, and its body as it arrives: kept until
    L{deliverBody} gives it a protocol, then passed straight on.
    """

    request = None
    previousResponse = None

    def __init__(self, version: tuple, code: int, phrase: bytes, headers: Headers) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = UNKNOWN_LENGTH
        self._connection: _Connection | None = None  # while the body is read
        self._data: list[bytes] | None = []  # None once a protocol has it all
        self._size = 0
        self._protocol = None
        self._end = None  # _DONE or a Failure, once the body ended

    def setPreviousResponse(self, response) -> None:
        self.previousResponse = response

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
        if self._connection is not None:
            self._connection._attach()
        protocol.makeConnection(_BodyTransport(self))
        data, self._data = self._data, None
        end = self._end
        if data:
            protocol.dataReceived(data[0] if len(data) == 1 else b"".join(data))
        if end is not None:
            protocol.connectionLost(_reason(end))

    def _finish(self, end: Failure | None) -> None:
        self._end = _DONE if end is None else end
        if self._data is None and self._protocol is not _TAKEN:
            self._protocol.connectionLost(_reason(self._end))

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
        connection = self._response._connection
        if connection is not None:
            connection._pause()

    def resumeProducing(self) -> None:
        connection = self._response._connection
        if connection is not None:
            connection._resume()

    def stopProducing(self) -> None:
        connection = self._response._connection
        if connection is not None:
            connection._abort()

    loseConnection = abortConnection = stopProducing


class _Collector(Protocol):
    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        self._pieces.append(data)

    def connectionLost(self, reason: Failure) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._pieces))
        else:
            self.done.errback(reason)

    def _cancel(self, done: Deferred) -> None:
        if self.transport is not None:
            self.transport.stopProducing()


def read_body(response: IResponse) -> Deferred[bytes]:
    """
    The whole body of C{response}; already fired when the body is all in
    (most answers arrive with their head). A body ended by the connection's
    close (L{PotentialDataLoss}) counts as whole, as in treq; any other end
    fails with its reason. Cancelling closes the connection.
    """
    if type(response) is Response:
        body = response._take()
        if body is not None:
            return succeed(body)
    collector = _Collector()
    response.deliverBody(collector)
    return collector.done
