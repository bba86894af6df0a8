# -*- test-case-name: tests.unit.test_streaming -*-
"""
Relaying a provider's L{IEventStream} to the client as server-sent events.

The stream is registered as the response's producer, so when the client
reads slowly Twisted pauses the provider instead of buffering without bound.
The framing (C{data: ...}, the blank line, the closing C{data: [DONE]}) is
written here, once, for every provider.

A stream that fails after it started cannot change its status code any more:
it ends with one C{data:} event carrying an OpenAI error object (what OpenAI
itself sends), then closes, so the SDKs raise instead of hanging.

What the stream's items become on the wire is its L{IFraming}'s business:
L{CHAT_FRAMING} for Chat Completions chunks, a dialect's stream encoder
(L{llmedge.dialects}) for a provider's translated events, L{AsIs} for
events an upstream of the client's own dialect sent already framed.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from llmedge.errors import APIError, error_from_failure
from llmedge.observe.timing import UpstreamTimer
from llmedge.providers.base import IEventStream
from llmedge.twisted_insides import gone

DONE = b"data: [DONE]\n\n"


def event(data: bytes) -> bytes:
    """
    Frame one event's data (which has no line breaks: it is compact JSON).
    """
    return b"data: " + data + b"\n\n"


class IFraming(Interface):
    """
    How a stream's items are written: the codec of the client's dialect.
    """

    def encode(item) -> bytes:
        """
        The bytes to send for one item the stream delivered.
        """

    def end() -> bytes:
        """
        The bytes that end a stream that went well.
        """

    def fail(error: APIError) -> bytes:
        """
        The bytes that tell the client a started stream broke with C{error}.
        """


@implementer(IFraming)
class _ChatFraming:
    """
    Chat Completions: each item is a chunk's JSON; C{[DONE]} ends; an
    error is a C{data:} event holding an OpenAI error object.
    """

    def encode(self, item: bytes) -> bytes:
        return b"data: " + item + b"\n\n"

    def end(self) -> bytes:
        return DONE

    def fail(self, error: APIError) -> bytes:
        return b"data: " + error.body() + b"\n\n"


@implementer(IFraming)
class AsIs:
    """
    Items already framed as SSE events of the client's dialect (an
    upstream of the same dialect passed through); C{fail} frames errors
    in that dialect.
    """

    def __init__(self, fail: Callable[[APIError], bytes]) -> None:
        self.fail = fail

    def encode(self, item: bytes) -> bytes:
        return item

    def end(self) -> bytes:
        return b""


CHAT_FRAMING = _ChatFraming()


def relay_headers(request, headers) -> None:
    """
    Pass on upstream headers, except those llmedge set itself (its own
    rate limit is the nearer one).
    """
    for name, value in headers:
        if not request.responseHeaders.hasHeader(name):
            request.responseHeaders.addRawHeader(name, value)


KEEPALIVE = b": keep-alive\n\n"


def relay(
    request,
    stream: IEventStream,
    timer: UpstreamTimer,
    clock: IReactorTime | None = None,
    keepalive: float = 0.0,
    framing: IFraming = CHAT_FRAMING,
) -> Deferred[None]:
    """
    Send C{stream} as the response to C{request} and finish it.

    Until the first event arrives, an SSE comment is sent every
    C{keepalive} seconds, so proxies and load balancers that cut idle
    connections leave a stream waiting on a slow model alone.

    @param timer: told of the first event and of the end.
    @param framing: what the stream's items become on the wire.
    @return: the Deferred of the stream's delivery, tracked by the request
        so a disconnect cancels it; it fires when the response is over.
    """
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"X-Accel-Buffering", b"no")
    relay_headers(request, getattr(stream, "headers", ()))
    request.write(b"")  # headers (request id, rate limits) before the first event
    request.registerProducer(stream, True)
    beat = None
    if keepalive > 0 and clock is not None:
        beat = LoopingCall(request.write, KEEPALIVE)
        beat.clock = clock
        beat.start(keepalive, now=False)

    def quiet() -> None:
        if beat is not None and beat.running:
            beat.stop()

    def deliver(data: bytes) -> None:
        if beat is not None:
            quiet()
        timer.first_event()
        request.write(framing.encode(data))

    done = request.track(stream.start(deliver))

    def finished(result: None | Failure) -> None:
        quiet()
        if isinstance(result, Failure):
            timer.failed(result)
        else:
            timer.done("ok", getattr(stream, "usage", None))
        if gone(request):
            return None
        request.unregisterProducer()
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return None
            error = error_from_failure(result)
            request.exchange.error_code = error.code or error.type
            request.write(framing.fail(error))
        else:
            request.write(framing.end())
        request.finish()
        return None

    done.addBoth(finished)
    return done
