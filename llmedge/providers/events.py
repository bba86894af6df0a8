# -*- test-case-name: tests.unit.test_events -*-
"""
Reading an upstream's server-sent events as they arrive, under
back-pressure and within a bound.

L{SSEReader} is the body protocol of an upstream response: it splits the
bytes into events by the rules of the WHATWG HTML standard's
C{text/event-stream} parsing, without waiting for the body to end, and
keeps at most C{max_event} bytes of one event (its data lines, its type and
the line being read). L{UpstreamStream} wraps it as the L{IEventStream} the
front relays: pausing it pauses the upstream socket (the response's
transport), so a client that reads slowly makes llmedge stop reading from
the provider instead of buffering the answer; stopping it closes the
upstream connection, which is how a provider learns that nobody wants the
rest. It says when the events of one read are all delivered
(L{IBatchedStream}): an upstream that sends a burst of events has them
written to the client in one piece, not one write each.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from llmedge.errors import APIError
from llmedge.providers.base import IBatchedStream
from llmedge.providers.upstream import upstream_error

#: The most one event may hold (its data lines, its type, the line being
#: read) unless the caller says otherwise: a chunk is a few hundred bytes,
#: a large tool call's arguments some kilobytes.
MAX_EVENT = 1024 * 1024

_BOM = b"\xef\xbb\xbf"

class Handler(typing.Protocol):
    """
    Translates one provider's events for the client.

    @ivar usage: the stream's OpenAI usage object, once seen.
    """

    usage: dict | None

    def __call__(
        self, event: bytes | None, data: bytes, deliver: Callable[[bytes], None]
    ) -> bool:
        """
        Handle one event, calling C{deliver} for each event to send on;
        return True at the stream's own end marker (C{[DONE]},
        C{message_stop}).
        """


class SSEReader(Protocol):
    """
    Split a response body into server-sent events, as the HTML standard
    says a browser does, keeping what llmedge uses.

      - Lines end with CRLF, LF or a lone CR; a CR ending one read and an LF
        starting the next are one line end. One leading UTF-8 byte order
        mark is skipped.
      - A line is a field C{name:value} (one space after the colon is
        dropped, no more; a line without a colon is a field with an empty
        value), a comment (a leading colon), or blank.
      - C{data} adds a line to the event's data, C{event} sets its type;
        C{id}, C{retry} and unknown fields are ignored.
      - A blank line dispatches the event, its data lines joined with LF,
        when it has at least one data line (an event with none is dropped);
        either way the type is reset. An empty type is no type (L{None}).
      - Bytes after the last blank line are an incomplete event, dropped
        when the body ends.

    The bytes of an unfinished line are kept as a list of pieces, joined
    once when the line ends, so a long line trickled in small reads costs
    time linear in its length. An event over C{max_event} bytes (counting
    a byte per line end between data lines, as the standard's data buffer
    does) stops the reader: it stops the transport (closing the upstream
    connection), calls C{on_too_large} and reads nothing more.

    @param on_event: called with (type or L{None}, data) for each event.
    @param max_event: the bound of one event, in bytes.
    @param on_too_large: called once when an event goes over the bound.
    @param on_read: called after each read's events were dispatched (even
        none), so their consumer can handle them together.
    """

    def __init__(
        self,
        on_event: Callable[[bytes | None, bytes], None],
        max_event: int = MAX_EVENT,
        on_too_large: Callable[[], None] | None = None,
        on_read: Callable[[], None] | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_too_large = on_too_large
        self._on_read = on_read
        self.max_event = max_event
        self._pieces: list[bytes] = []  # of the line being read
        self._pending = 0  # their length
        self._after_cr = False  # the last read ended in CR: skip one LF
        self._head: bytes | None = b""  # the first bytes, until the BOM is ruled out
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self._size = 0  # of the event: data lines, one byte a line, type
        self.too_large = False
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        if self.too_large or not data:
            return
        self._read(data)
        if self._on_read is not None:
            self._on_read()

    def _read(self, data: bytes) -> None:
        """
        Dispatch the events C{data} completes, and keep what it leaves
        unfinished.
        """
        if self._head is not None:
            head = self._head + data
            if len(head) < 3 and _BOM.startswith(head):
                self._head = head
                return
            self._head = None
            data = head[3:] if head.startswith(_BOM) else head
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            # A CR that ends this read ends its line; the LF that may start
            # the next read belongs to it.
            self._after_cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines:
            if self._pieces:
                self._pieces.append(lines[0])
                lines[0] = b"".join(self._pieces)
                self._pieces, self._pending = [], 0
            for line in lines:
                if line.startswith(b"data:"):
                    value = line[6:] if line[5:6] == b" " else line[5:]
                    self._data.append(value)
                    self._size += len(value) + 1
                    if self._size > self.max_event:
                        return self._overflow()
                elif not line:
                    self._dispatch()
                elif line[0] != 0x3A:  # not a comment
                    self._field(line)
                    if self.too_large:
                        return
        if rest:
            self._pieces.append(rest)
            self._pending += len(rest)
            if self._size + self._pending > self.max_event:
                self._overflow()

    def _dispatch(self) -> None:
        data, self._data = self._data, []
        event, self._event = self._event, None
        self._size = 0
        if data:
            self._on_event(event or None, data[0] if len(data) == 1 else b"\n".join(data))

    def _field(self, line: bytes) -> None:
        """
        A line that is not blank, a comment or a C{data:} field.
        """
        field, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if field == b"data":  # "data" without a colon
            self._data.append(value)
            self._size += 1
        elif field == b"event":
            self._size += len(value) - len(self._event or b"")
            self._event = value
        if self._size > self.max_event:
            self._overflow()

    def _overflow(self) -> None:
        self.too_large = True
        self._pieces, self._pending = [], 0
        self._data, self._event = [], None
        if self.transport is not None:
            self.transport.stopProducing()
        if self._on_too_large is not None:
            self._on_too_large()

    def connectionLost(self, reason: Failure) -> None:
        # An event not ended by a blank line is dropped (as the standard says).
        self._pieces, self._data = [], []
        if reason.check(ResponseDone, PotentialDataLoss):
            self.ended.callback(None)
        else:
            self.ended.errback(reason)


@implementer(IBatchedStream)
class UpstreamStream:
    """
    An upstream response body relayed event by event, in batches: the
    events of each upstream read, C{flush} called after each.

    @param handle: translates each upstream event for the client.
    @param headers: upstream response headers to pass on.
    @param max_event: the most one upstream event may hold, in bytes; past
        it the upstream connection is closed and the stream fails with a
        502 C{upstream_response_too_large}.
    """

    def __init__(
        self,
        provider: str,
        response,
        handle: Handler,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        max_event: int = MAX_EVENT,
    ) -> None:
        self.provider = provider
        self.headers = headers
        self._response = response
        self._handle = handle
        self._max_event = max_event
        self._reader: SSEReader | None = None
        self._done: Deferred[None] | None = None
        self._receiver: Callable[[bytes], None] | None = None
        self._complete = False
        self._failed: Failure | None = None

    @property
    def usage(self) -> dict | None:
        return self._handle.usage

    def start(
        self, receiver: Callable[[bytes], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        self._receiver = receiver
        # The whole stream may already be here (a short answer arrives with
        # its head) and end within deliverBody, which forgets self._done.
        done = self._done = Deferred(self._cancel)
        self._reader = SSEReader(self._event, self._max_event, self._too_large, flush)
        self._reader.ended.addBoth(self._ended)
        self._response.deliverBody(self._reader)
        return done

    def _event(self, event: bytes | None, data: bytes) -> None:
        if self._complete or self._failed is not None:
            return
        try:
            self._complete = self._handle(event, data, self._receiver)
        except APIError:
            self._fail(Failure())
        except Exception:
            self._fail(Failure(upstream_error(
                self.provider, 502,
                f"Provider '{self.provider}' sent a malformed stream event.",
                "upstream_malformed_response", retryable=False)))

    def _too_large(self) -> None:
        # The reader has already closed the upstream connection.
        if self._failed is None and not self._complete:
            self._failed = Failure(upstream_error(
                self.provider, 502,
                f"Provider '{self.provider}' sent a stream event over {self._max_event} bytes.",
                "upstream_response_too_large", retryable=False))

    def _fail(self, reason: Failure) -> None:
        self._failed = reason
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.stopProducing()

    def _ended(self, result) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        if self._failed is not None:
            done.errback(self._failed)
        elif self._complete:
            done.callback(None)
        else:
            done.errback(upstream_error(
                self.provider, 502,
                f"Provider '{self.provider}' ended the stream before it was complete.",
                "upstream_stream_broken", retryable=False))

    def _cancel(self, done: Deferred) -> None:
        # Deferred.cancel fails it with CancelledError itself: forget it.
        self._done = None
        self.stopProducing()

    def pauseProducing(self) -> None:
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        Close the upstream connection; the stream fails with
        L{CancelledError}.
        """
        if self._failed is None:
            self._failed = Failure(CancelledError())
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.stopProducing()
