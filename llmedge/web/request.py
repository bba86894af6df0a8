# -*- test-case-name: tests.unit.test_request -*-
"""
L{EdgeRequest}: the per-request object for every listener.

Two jobs cannot be done by a resource, because Twisted reads the whole body
before any resource runs, and both are done here:

  - the body-size limit, enforced while the body arrives: a declared
    C{Content-Length} over the limit is answered at once with a 413, before
    the client sends the body, and a chunked body is cut off at the first
    chunk past the limit, so nothing over the limit is ever buffered;
  - cancelling the work behind a request when its client goes away
    (L{EdgeRequest.track}), so nothing keeps running for nobody.

It also gives each request its id, kept from the client's C{x-request-id}
when sane, and answers unexpected failures with OpenAI error JSON rather than
Twisted's HTML traceback page.
"""

from __future__ import annotations

import inspect
import io
import re
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from llmedge.dialects.messages_errors import error_body as anthropic_error_body
from llmedge.errors import (
    APIError, error_from_failure, raw_response, reason_phrase, request_too_large, write_error,
)
from llmedge.twisted_insides import gone, request_line
from llmedge.observe.tracing import TraceContext, trace_context
from llmedge.web.drain import close_after_response

#: A client-supplied request id is kept only if it is this shape: printable
#: ASCII without spaces, at most 128 characters, so it is safe to log and to
#: send upstream as a header.
SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")

#: After refusing an oversized body, keep reading (and discarding) what the
#: client still sends for this long before closing, so the client reads the
#: 413 instead of a connection reset.
LINGER_SECONDS = 2.0


def origin_form(target: bytes) -> bytes:
    """
    The path and query of an absolute-form request target
    (C{POST http://host/v1/chat/completions}), which a server must accept
    (RFC 9112, section 3.2.2) and serves as if the path had come alone; the
    authority in it names this server, and is not used for anything.
    """
    parts = urlsplit(target)
    return (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")


#: Twisted parses the form bodies (urlencoded, multipart) of every POST into
#: C{args}, with an C{email} parser per request; llmedge takes JSON only,
#: so that work is waste, and a malformed multipart body would get Twisted's
#: bare 400 instead of llmedge's 415. Twisted 25.5 and later take
#: C{parsePOSTFormSubmission=False}; older ones (24.7 among them) parse on.
_NO_FORMS = ({"parsePOSTFormSubmission": False}
             if "parsePOSTFormSubmission" in inspect.signature(Request.__init__).parameters
             else {})


class EdgeRequest(Request):
    """
    A request that enforces the site's C{max_request_size} while reading,
    carries a C{request_id}, and cancels its tracked work on disconnect.
    """

    defaultContentType = b"application/json"
    _log = Logger()

    request_id: str = ""
    #: The L{llmedge.keys.ApiKey} that authenticated this request, if any.
    api_key = None
    _refused = False
    _stream_refusal = False
    _deadline: tuple[IReactorTime, float] | None = None
    _in_flight = False
    _recorded = False
    #: The request's W3C trace context, if it has one.
    trace: TraceContext | None = None
    _work: Deferred | None = None
    _linger: IDelayedCall | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs, **_NO_FORMS)
        # kept: the channel is gone by the time a lost request is recorded
        self._site = self.channel.site
        self.exchange = self._site.recorder.exchange()

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """
        Set the status with its standard reason phrase: Twisted's table
        lacks some llmedge answers with (C{429 Too Many Requests} would be
        C{429 Unknown Status}).
        """
        super().setResponseCode(code, message if message is not None else reason_phrase(code))

    def write(self, data: bytes) -> None:
        """
        As Twisted's, but the first write's head and body leave in one
        piece: Twisted writes the head, then the body, and a channel that
        sends at once (L{llmedge.web.channel.EdgeChannel}) would make them
        two packets, the client woken twice.
        """
        hold = None
        if data and not self.startedWriting:
            hold = getattr(self.channel, "hold_head", None)
        if hold is None:
            super().write(data)
            return
        hold()
        try:
            super().write(data)
        finally:
            self.channel.release_head()

    # -- body size ---------------------------------------------------------

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_request_size
        if length is not None and length > limit:
            self.content = io.BytesIO()
            self._refuse(limit)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        limit = self.channel.site.max_request_size
        if self.content.tell() + len(data) > limit:
            self._refuse(limit)
            return
        self.exchange.request_bytes += len(data)
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            if self._stream_refusal and not gone(self):
                self.finish()
            return
        if path[:8].lower().startswith((b"http://", b"https://")):
            path = origin_form(path)
        super().requestReceived(command, path, version)

    def _refuse(self, limit: int) -> None:
        """
        Answer 413 straight on the transport and stop reading the body.

        No resource has run yet and Twisted has not parsed the request line
        into this object, so the response is written whole here. A client
        waiting on C{Expect: 100-continue} must not be told to continue, so
        that header is dropped before Twisted looks at it.
        """
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")
        if not isinstance(self.channel, HTTPChannel):
            # An HTTP/2 stream learns its length while it is being built,
            # before it can carry a response: answer on the next turn.
            self._site.reactor.callLater(0, self._refuse_stream, limit)
            return
        request_id = self._pick_request_id()
        # For the record only: Twisted fills these in after the body.
        method, target = request_line(self.channel)
        self.method = method or self.method
        self.path = target.split(b"?", 1)[0]
        self.code = 413
        self.exchange.error_code = "request_too_large"
        transport = self.channel.transport
        error = request_too_large(limit)
        transport.write(raw_response(error, [(b"x-request-id", request_id)]))
        self.sentLength = len(error.body())
        self._record()
        # Half-close where the transport can (TCP): the client reads the 413
        # while what it still sends is discarded. Either way the connection
        # is aborted after LINGER_SECONDS, so a client that neither reads
        # nor stops sending cannot hold it.
        getattr(transport, "loseWriteConnection", transport.loseConnection)()
        self._linger = self.channel.site.reactor.callLater(
            LINGER_SECONDS, transport.abortConnection
        )

    def _refuse_stream(self, limit: int) -> None:
        """
        Answer 413 on an HTTP/2 stream, through this request: the stream
        has its own framing, and the connection's other streams go on.

        The status and body go out at once; the stream is ended when the
        client has finished sending (what it sends is discarded, never
        buffered, its flow-control window handed back). Twisted's own
        HTTP/2 connection failed on DATA frames arriving for a stream ended
        earlier; L{llmedge.web.h2.EdgeH2Connection} drops them, and the body
        timeout bounds a client that never finishes.
        """
        if gone(self):
            return
        self._stream_refusal = True
        self.method = getattr(self.channel, "command", self.method)
        self.path = (getattr(self.channel, "path", None) or b"").split(b"?", 1)[0]
        self.uri = self.path
        self.clientproto = b"HTTP/2"
        self.setHeader(b"x-request-id", self._pick_request_id())
        error = request_too_large(limit)
        self.exchange.error_code = error.code
        body = error.body()
        self.setResponseCode(error.status)
        self.setHeader(b"Content-Type", b"application/json")
        self.setHeader(b"Content-Length", b"%d" % (len(body),))
        self.write(body)

    # -- request id ----------------------------------------------------------

    def _pick_request_id(self) -> bytes:
        given = self.requestHeaders.getRawHeaders(b"x-request-id")
        if given and SANE_REQUEST_ID.fullmatch(given[0]):
            chosen = given[0]
        else:
            chosen = self.channel.site.make_request_id().encode("ascii")
        self.request_id = chosen.decode("ascii")
        return chosen

    def error_body(self, error: APIError) -> bytes:
        """
        The body that carries C{error} to this client: Anthropic's error
        shape under C{/v1/messages}, whose clients (the Anthropic SDKs,
        Claude Code) read no other, OpenAI's everywhere else. Decided by
        the path rather than by the resource that answers, because the
        wrappers above C{/v1} (authentication, rate limits) refuse before
        any route's resource is reached.
        """
        if self.path.startswith(b"/v1/messages"):
            return anthropic_error_body(error, self.request_id)
        return error.body()

    def process(self) -> None:
        site = self.channel.site
        self.setHeader(b"x-request-id", self._pick_request_id())
        if self.path.startswith(b"/v1"):
            # Every API answer says whether the response cache served it;
            # the cache step (llmedge.web.cached) says hit or miss.
            self.setHeader(b"x-llmedge-cache", b"bypass")
        if getattr(site, "draining", False):
            close_after_response(self)
        self.trace = trace_context(
            self.requestHeaders.getRawHeaders(b"traceparent", [None])[0],
            self.requestHeaders.getRawHeaders(b"tracestate", [None])[0],
            site.generate_traces,
            site.random_bytes,
        )
        if self.trace is not None:
            self.exchange.trace_id = self.trace.trace_id
            self.exchange.span_id = self.trace.span_id
            self.exchange.parent_span_id = self.trace.parent_id
            self.exchange.trace_sampled = self.trace.sampled
        site.recorder.started()
        self._in_flight = True
        super().process()

    def _record(self) -> None:
        """
        Hand this request to the site's recorder, once, when it ends.
        """
        if not self._recorded:
            self._recorded = True
            self._site.recorder.finished(self, self._in_flight)

    # -- work and failures ---------------------------------------------------

    def set_deadline(self, clock: IReactorTime, when: float) -> None:
        """
        Bound all work tracked from now on to end by C{when} on C{clock}.
        """
        self._deadline = (clock, when)

    @property
    def deadline(self) -> float | None:
        """
        When the request's deadline passes (its clock's seconds), or
        L{None} without one.
        """
        return None if self._deadline is None else self._deadline[1]

    def track(self, work: Deferred) -> Deferred:
        """
        Make C{work} the Deferred to cancel if the client goes away or the
        deadline passes; in the latter case it fails with
        L{twisted.internet.defer.TimeoutError}.

        @return: C{work}, for chaining.
        """
        if work.called and not work.paused:
            return work  # over already (an answer made at once): nothing to bound
        self._work = work
        if self._deadline is not None:
            clock, when = self._deadline
            work.addTimeout(max(0.0, when - clock.seconds()), clock)

        def forget(result):
            if self._work is work:
                self._work = None
            return result

        work.addBoth(forget)
        return work

    def connectionLost(self, reason: Failure) -> None:
        aborted = not self.finished
        super().connectionLost(reason)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        work, self._work = self._work, None
        if work is not None:
            # The handlers see the request disconnected and write nothing;
            # the cancellation is recorded (outcome, upstream time) first.
            # A Deferred that fired into another it now waits on passes the
            # cancel on to it; one that is over ignores it.
            work.cancel()
        if aborted:
            self.exchange.aborted = True
            self._record()

    def processingFailed(self, reason: Failure) -> Failure:
        """
        Answer an unexpected failure with a 500 in OpenAI's shape; the
        traceback goes to the log, never to the client.
        """
        write_error(self, error_from_failure(reason))
        return reason
