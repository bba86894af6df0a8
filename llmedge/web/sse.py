# -*- test-case-name: tests.unit.test_streaming,tests.unit.test_sse_batches -*-
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

Each write costs a transport write (on HTTP/1.1 a chunk of four pieces), so
events that come together leave together: a stream that says where its
batches end (L{IBatchedStream}: the events of one upstream read) has each
batch held and written in one piece when it ends, or as soon as it reaches
L{MAX_BATCH}. No timer is involved: an event that comes alone is written at
the end of its read, for one write as before. The stream's first event is
written at once, alone (the client's time to first token), and a stream that
knows no batches has each event written as it comes.
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
from llmedge.providers.base import IBatchedStream, IEventStream
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

#: The most a batch holds before it is written, whatever the stream says:
#: a client that reads slowly pauses the stream when a write fills the
#: transport's buffer (64 KiB in Twisted), so no batch may hide more than
#: that from it.
MAX_BATCH = 64 * 1024


class _Writer:
    """
    The receiver of a stream's items: each is framed when it comes, and
    written

      - at once if it is the stream's first, after C{first} is called (the
        time to first token is noted, the keep-alives stop);
      - at once for a stream that knows no batches;
      - else held until the stream says its batch is over (L{flush}) or
        the batch reaches L{MAX_BATCH}, and then written in one piece,
        unless the request is gone by then.
    """

    def __init__(self, request, encode: Callable, first: Callable[[], None],
                 batched: bool) -> None:
        self._request = request
        self._encode = encode
        self._first: Callable[[], None] | None = first
        self._held: list[bytes] | None = [] if batched else None
        self._size = 0

    def __call__(self, item) -> None:
        first = self._first
        if first is not None:
            self._first = None
            first()
            self._request.write(self._encode(item))
            return
        held = self._held
        if held is None:
            self._request.write(self._encode(item))
            return
        data = self._encode(item)
        held.append(data)
        self._size += len(data)
        if self._size >= MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        """
        Write what is held, in one piece; drop it if the request is gone.
        """
        held = self._held
        if held:
            data = held[0] if len(held) == 1 else b"".join(held)
            held.clear()
            self._size = 0
            if not gone(self._request):
                self._request.write(data)


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
    # Registered first: a streamed answer is written through the transport,
    # the writes of one turn sent together (llmedge.web.channel).
    request.registerProducer(stream, True)
    request.write(b"")  # headers (request id, rate limits) before the first event
    beat = None
    if keepalive > 0 and clock is not None:
        beat = LoopingCall(request.write, KEEPALIVE)
        beat.clock = clock
        beat.start(keepalive, now=False)

    def quiet() -> None:
        if beat is not None and beat.running:
            beat.stop()

    def first() -> None:
        quiet()
        timer.first_event()

    batched = IBatchedStream.providedBy(stream)
    writer = _Writer(request, framing.encode, first, batched)
    started = stream.start(writer, writer.flush) if batched else stream.start(writer)
    done = request.track(started)

    def finished(result: None | Failure) -> None:
        quiet()
        if isinstance(result, Failure):
            timer.failed(result)
        else:
            timer.done("ok", getattr(stream, "usage", None))
        writer.flush()  # a stream may end amid a batch; nothing if the client left
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
