# -*- test-case-name: tests.unit.test_upstream -*-
"""
Reading an upstream's server-sent events as they arrive, under
back-pressure.

L{SSEReader} is the body protocol of an upstream response: it splits the
bytes into events (C{event:}/C{data:} fields, blank-line separated, comments
ignored) without waiting for the body to end. L{UpstreamStream} wraps it as
the L{IEventStream} the front relays: pausing it pauses the upstream
socket (the response's transport), so a client that reads slowly makes
llmedge stop reading from the provider instead of buffering the answer;
stopping it closes the upstream connection, which is how a provider learns
that nobody wants the rest.
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
from llmedge.providers.base import IEventStream
from llmedge.providers.upstream import upstream_error

#: A line longer than this without a line break is not an event stream.
MAX_LINE = 4 * 1024 * 1024

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
    Split a response body into server-sent events.
    """

    def __init__(self, on_event: Callable[[bytes | None, bytes], None]) -> None:
        self._on_event = on_event
        self._pending = b""
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE:
            self.transport.stopProducing()
            return
        for line in lines:
            self._line(line[:-1] if line.endswith(b"\r") else line)

    def _line(self, line: bytes) -> None:
        if not line:
            if self._data:
                event, data = self._event, b"\n".join(self._data)
                self._event, self._data = None, []
                self._on_event(event, data)
            return
        if line.startswith(b":"):
            return
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value

    def connectionLost(self, reason: Failure) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.ended.callback(None)
        else:
            self.ended.errback(reason)


@implementer(IEventStream)
class UpstreamStream:
    """
    An upstream response body relayed event by event.

    @param handle: translates each upstream event for the client.
    @param headers: upstream response headers to pass on.
    """

    def __init__(
        self,
        provider: str,
        response,
        handle: Handler,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.provider = provider
        self.headers = headers
        self._response = response
        self._handle = handle
        self._reader: SSEReader | None = None
        self._done: Deferred[None] | None = None
        self._receiver: Callable[[bytes], None] | None = None
        self._complete = False
        self._failed: Failure | None = None

    @property
    def usage(self) -> dict | None:
        return self._handle.usage

    def start(self, receiver: Callable[[bytes], None]) -> Deferred[None]:
        self._receiver = receiver
        # The whole stream may already be here (a short answer arrives with
        # its head) and end within deliverBody, which forgets self._done.
        done = self._done = Deferred(self._cancel)
        self._reader = SSEReader(self._event)
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
