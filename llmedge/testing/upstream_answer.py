# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
How the fake upstream answers one API request: when, in what shape, and how
badly, as the model name's options ask (L{llmedge.testing.upstream_options}).

The wire formats (L{llmedge.testing.upstream_openai},
L{llmedge.testing.upstream_chat}, L{llmedge.testing.upstream_responses},
L{llmedge.testing.upstream_anthropic}) say what the documents and events
are; this module decides when they go out. Every delay is a C{callLater} on
the injected clock, so unit tests drive a whole misbehaving exchange with
C{Clock.advance} and never sleep.

Streams are written by L{PacedWriter}, a push producer registered on the
request: when a slow reader fills the transport's buffer Twisted pauses it
and no further event is even built, which is what lets a proxy's
back-pressure be tested with a large C{chunks} times C{size}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from llmedge.testing.upstream_options import OVERSIZE_MESSAGE, Ask, BadOption, Behaviour, \
    Behaviours

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"
HTML = b"text/html; charset=utf-8"
#: The body C{garbage} sends where JSON was expected.
GARBAGE = b'{"id": this is not JSON'


def reason(status: int) -> str:
    """
    The reason phrase for C{status}; Python knows more of them (429, 422)
    than C{twisted.web.http.RESPONSES}, and Anthropic's 529 is nobody's.
    """
    if status == 529:
        return "Site Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def html_page(status: int) -> bytes:
    """
    An error page like the one a load balancer in front of a provider sends.
    """
    title = f"{status} {reason(status)}"
    return (
        f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
        "</center><hr><center>fake upstream</center></body></html>\n"
    ).encode()


@implementer(IPushProducer)
class PacedWriter:
    """
    Write a stream's events to a request one at a time, C{interval} seconds
    apart (with 0, as many as the transport takes before it pauses us), then
    the C{trailer}, then finish.

    Events are pulled from an iterator only when they are written, so a
    paused stream holds no backlog. With C{reset_after}, the connection is
    aborted once that many events are out, on the next turn of the reactor
    so the events already written reach the socket first.

    @param sent: told the running count of events written.
    """

    def __init__(
        self,
        clock,
        request,
        events: Iterator[bytes],
        trailer: bytes,
        interval: float,
        first_delay: float = 0.0,
        reset_after: int | None = None,
        sent: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._clock = clock
        self._request = request
        self._events = events
        self._upcoming = next(events, None)
        self._trailer = trailer
        self._interval = interval
        self._first_delay = first_delay
        self._reset_after = reset_after
        self._sent = sent
        self.count = 0
        self._pending = None
        self._paused = False
        self._over = False

    def start(self) -> None:
        self._schedule(self._first_delay)

    def _schedule(self, delay: float) -> None:
        if self._paused or self._over or self._pending is not None:
            return
        self._pending = self._clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._pending = None
        while not (self._paused or self._over):
            if self._reset_after is not None and self.count >= self._reset_after:
                self._abort()
                return
            if self._upcoming is None:
                self._end()
                return
            frame, self._upcoming = self._upcoming, next(self._events, None)
            self._request.write(frame)
            self.count += 1
            self._sent(self.count)
            if self._interval > 0 and self._upcoming is not None:
                break
        self._schedule(self._interval)

    def _end(self) -> None:
        self._over = True
        self._request.unregisterProducer()
        if self._trailer:
            self._request.write(self._trailer)
        self._request.finish()

    def _abort(self) -> None:
        self._over = True
        channel = self._request.channel
        if channel is not None and channel.transport is not None:
            self._clock.callLater(0, channel.transport.abortConnection)

    def _cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule(self._interval if self.count else self._first_delay)

    def stopProducing(self) -> None:
        self._over = True
        self._cancel()


def _with_garbage(events: Iterator[bytes], garbage: bytes) -> Iterator[bytes]:
    """
    The events with C{garbage} after the first: the stream has started
    well, so the client cannot treat the whole response as an error.
    """
    for index, frame in enumerate(events):
        yield frame
        if index == 0:
            yield garbage


class Answer:
    """
    The answer to one request whose body was valid: waits, errors, aborts,
    or the document or stream the wire format makes.

    A client that goes away cancels whatever is still scheduled, so nothing
    keeps running for a closed connection.
    """

    def __init__(self, clock, request, wire, ask: Ask, entry: dict[str, Any]) -> None:
        self._clock = clock
        self._request = request
        self._wire = wire
        self._ask = ask
        self._entry = entry
        self._pending = None
        self._writer: PacedWriter | None = None

    def start(self) -> None:
        self._request.notifyFinish().addErrback(self._lost)
        behaviour = self._ask.behaviour
        if behaviour.hang:
            return
        if behaviour.slow_headers > 0:
            self._pending = self._clock.callLater(behaviour.slow_headers, self._respond)
        else:
            self._respond()

    def _respond(self) -> None:
        self._pending = None
        behaviour, ask = self._ask.behaviour, self._ask
        if behaviour.status is not None:
            self._error(behaviour)
        elif behaviour.reset_after is not None and not ask.stream:
            self._request.channel.transport.abortConnection()
        elif ask.stream:
            self._stream(behaviour)
        elif behaviour.garbage:
            self._send(200, JSON, GARBAGE)
        else:
            self._send(200, JSON, _dumps(self._wire.answer(ask)))

    def _error(self, behaviour: Behaviour) -> None:
        status = behaviour.status
        assert status is not None
        if behaviour.retry_after is not None:
            self._request.setHeader(b"Retry-After", behaviour.retry_after.encode())
        if behaviour.html:
            self._send(status, HTML, html_page(status))
        elif behaviour.oversize:
            # Wire formats without a document of their own for it (Anthropic
            # answers 413) send the message in their 429's shape.
            oversize = getattr(self._wire, "oversize", None)
            document = oversize() if oversize else self._wire.error(status, OVERSIZE_MESSAGE)
            self._send(status, JSON, _dumps(document))
        else:
            message = f"fake upstream: status {status}, as the model name asked"
            self._send(status, JSON, _dumps(self._wire.error(status, message)))

    def _send(self, status: int, content_type: bytes, body: bytes) -> None:
        request = self._request
        request.setResponseCode(status, reason(status).encode())
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"Content-Length", str(len(body)).encode())
        request.write(body)
        request.finish()

    def _stream(self, behaviour: Behaviour) -> None:
        request = self._request
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", EVENT_STREAM)
        request.setHeader(b"Cache-Control", b"no-cache")
        request.write(b"")  # the headers now, whatever the events' pace
        events = self._wire.events(self._ask)
        if behaviour.garbage:
            events = _with_garbage(events, self._wire.garbage_event())

        def sent(count: int) -> None:
            self._entry["chunks_sent"] = count

        self._writer = PacedWriter(
            self._clock, request, events, self._wire.trailer, behaviour.interval,
            behaviour.slow_first, behaviour.reset_after, sent,
        )
        request.registerProducer(self._writer, True)
        self._writer.start()

    def _lost(self, reason) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._writer is not None:
            self._writer.stopProducing()


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class Endpoint(Resource):
    """
    One API endpoint (a POST taking a model), answering in C{wire}'s format.

    Expects C{request.entry}, the request's log entry, set by the root.
    What tests set at run time comes from C{behaviours}, shared by the
    site's endpoints and its control path.
    """

    isLeaf = True

    def __init__(self, clock, wire, behaviours: Behaviours | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._wire = wire
        self._behaviours = behaviours if behaviours is not None else Behaviours()

    def _refuse(self, request, status: int, message: str, param: str | None = None) -> bytes:
        request.setResponseCode(status, reason(status).encode())
        request.setHeader(b"Content-Type", JSON)
        return _dumps(self._wire.error(status, message, param))

    def render(self, request) -> bytes | int:
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return self._refuse(request, 405, f"{request.method.decode()} is not allowed here")
        entry = request.entry
        body = entry["body"]
        if not isinstance(body, dict):
            return self._refuse(request, 400, "the body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._refuse(request, 400, "model is required", "model")
        try:
            _, behaviour = self._behaviours.options(model)
        except BadOption as e:
            return self._refuse(request, 400, str(e), "model")
        problem = self._wire.problem(body)
        if problem is not None:
            param, message = problem
            return self._refuse(request, 400, message, param)
        behaviour = self._behaviours.seen(model, behaviour)
        stream = self._wire.streams and body.get("stream") is True
        ask = Ask(entry["n"], model, body, behaviour, int(self._clock.seconds()), stream)
        Answer(self._clock, request, self._wire, ask, entry).start()
        return NOT_DONE_YET
