# -*- test-case-name: tests.unit.test_resources -*-
"""
The API under C{/v1}: OpenAI's chat completions, legacy completions,
embeddings, Responses and models, and Anthropic's Messages (with its
token count).

Each POST endpoint does the same four steps, in L{ModelCall}: read the body
as JSON, check it for its dialect (its L{llmedge.web.fronts.Front}), ask the
router which provider serves the model, and hand the provider's answer back
in the client's dialect (a JSON document, or a stream relayed as
server-sent events). The provider's Deferred is tracked by the request, so
a client that disconnects cancels the work.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from llmedge.errors import APIError, error_from_failure, rate_limit_unavailable, write_error
from llmedge.limits.store import StoreUnavailable
from llmedge.observe.timing import UpstreamTimer
from llmedge.dialects.messages import estimate_input_tokens
from llmedge.dialects.reply import IReplyStream, Reply
from llmedge.cache import entry as entries
from llmedge.providers.base import RESPONSES, Answer, Call, IEventStream
from llmedge.providers.translated import replayed
from llmedge.routing.router import Router
from llmedge.routing.attempts import run
from llmedge.twisted_insides import gone
from llmedge.web.body import read_json_object
from llmedge.web.cached import (
    BYPASS,
    BYPASS_VISIT,
    HEADER as CACHE_HEADER,
    HIT,
    MISS,
    REPLAYED,
    ResponseCache,
    Visit,
    recording,
    whole_entry,
)
from llmedge.web.fronts import (
    CHAT_FRONT,
    COMPLETIONS_FRONT,
    COUNT_TOKENS_FRONT,
    EMBEDDINGS_FRONT,
    MESSAGES_FRONT,
    RESPONSES_FRONT,
    Front,
)
from llmedge.jsonwire import json_bytes
from llmedge.web.resource import Endpoint, Leaf, Node, write_json
from llmedge.web.sse import relay, relay_headers
from llmedge.web.token_limits import TokenLimiter


class ModelCall(Leaf):
    """
    A POST endpoint that sends a checked call to the provider of its model.

    @param front: what the endpoint's dialect puts into each step.
    """

    def __init__(
        self,
        router: Router,
        front: Front,
        clock: IReactorTime,
        keepalive: float = 0.0,
        tokens: TokenLimiter | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__()
        self._tokens = tokens if front.counts_tokens else None
        self._cache = cache
        self._clock = clock
        self._keepalive = keepalive
        self._router = router
        self._front = front
        self._endpoint = front.endpoint
        self._method = front.method

    def render_POST(self, request):
        body, raw = read_json_object(request)
        exchange = request.exchange
        exchange.model = body.get("model") if isinstance(body.get("model"), str) else None
        front = self._front
        if not front.decodes:
            front.validate(body)
        headers = {"x-request-id": request.request_id}
        if request.trace is not None:
            exchange.upstream_span_id = request.site.random_bytes(8).hex()
            headers["traceparent"] = request.trace.traceparent(exchange.upstream_span_id)
            if request.trace.state:
                headers["tracestate"] = request.trace.state
        client_headers = {}
        for name in front.client_headers:
            value = request.getHeader(name)
            if value is not None:
                client_headers[name.decode("ascii")] = value.decode("latin-1")
        call = Call(self._endpoint, body, raw, request.request_id, headers, client_headers)
        if front.decodes:
            call.conversation  # checks the body: a 400 names what is wrong
        route = self._router.route(body["model"])
        exchange.endpoint = self._endpoint
        exchange.stream = call.stream
        if self._cache is None:
            self._admit(BYPASS_VISIT, request, route, call)
        else:
            consulted = self._cache.consult(request, call, route.cache)
            consulted.addCallback(self._consulted, request, route, call)
            consulted.addErrback(self._unreserved, request)
        return NOT_DONE_YET

    def _consulted(self, visit: Visit, request, route, call: Call) -> None:
        """
        Answer from the cache, or go on to the providers.
        """
        if gone(request):
            return  # gone while the cache was asked
        if visit.result == HIT:
            request.exchange.cache = HIT
            request.setHeader(CACHE_HEADER, b"hit")
            if self._hit(visit.data, request, call):
                return
            visit = visit.missed()
        self._admit(visit, request, route, call)

    def _admit(self, visit: Visit, request, route, call: Call) -> None:
        """
        Reserve the request's tokens, then call the providers.
        """
        request.exchange.cache = visit.result
        if visit.result != BYPASS:
            request.setHeader(CACHE_HEADER, visit.result.encode("ascii"))
        if self._tokens is None:
            self._call(None, request, route, call, visit)
        else:
            reserved = self._tokens.reserve(request, self._endpoint, call.body)
            reserved.addCallback(self._call, request, route, call, visit)
            reserved.addErrback(self._unreserved, request)

    def _call(self, refusal: APIError | None, request, route, call: Call, visit: Visit) -> None:
        """
        Call the providers, unless the token limit refused the request.
        """
        if refusal is not None:
            write_error(request, refusal)
            return
        if gone(request):
            return  # gone while its tokens were reserved
        timer = UpstreamTimer(self._clock, request.exchange)
        router = self._router
        work = request.track(run(
            route, self._method, call, self._clock, request.exchange, router.rng,
            router.backoff, request.deadline))
        work.addCallback(self._answer, request, timer, call, visit)
        work.addErrback(self._fail, request, timer)

    def _hit(self, data: bytes, request, call: Call) -> bool:
        """
        Write a stored answer in the client's dialect: its bytes for a
        whole answer, or its reply encoded (a Responses document, which
        echoes the asking request) or replayed as a stream.

        @return: whether the entry could answer the request.
        """
        front = self._front
        if not call.stream and call.endpoint != RESPONSES:
            body = entries.body_of(data)
            if body is not None:
                _write_document(request, body)
                return True
        try:
            reply = entries.loads(data).reply
        except ValueError:
            return False
        if reply is None or front.encode_reply is None:
            return False
        created = reply.created or int(self._clock.seconds())
        if call.stream:
            framing = front.stream_encoder(call.conversation, created)
            relay(request, replayed(reply), REPLAYED, self._clock, 0.0, framing)
        else:
            _write_document(request, json_bytes(front.encode_reply(reply, call.conversation, created)))
        return True

    def _unreserved(self, reason: Failure, request) -> None:
        if reason.check(StoreUnavailable):
            write_error(request, rate_limit_unavailable())
        else:
            write_error(request, error_from_failure(reason))

    def _answer(self, answer: Any, request, timer, call: Call, visit: Visit) -> None:
        """
        Write the provider's answer in the client's dialect: its own bytes
        (an L{Answer}, a stream of the client's dialect), a translated
        L{Reply} or reply stream encoded by the dialect's codec, or a
        document.
        """
        front = self._front
        if IEventStream.providedBy(answer):
            if gone(request):
                answer.stopProducing()
                return
            framing = front.framing
            if IReplyStream.providedBy(answer):
                framing = front.stream_encoder(call.conversation, int(self._clock.seconds()))
            if visit.result == MISS:
                answer = recording(answer, call, visit, self._cache.max_entry)
            relay(request, answer, timer, self._clock, self._keepalive, framing)
            return
        if isinstance(answer, Answer):
            timer.done("ok", answer.usage)
            body = answer.body
            relay_headers(request, answer.headers)
        elif isinstance(answer, Reply):
            timer.done("ok", answer.usage.openai())
            created = answer.created or int(self._clock.seconds())
            body = json_bytes(front.encode_reply(answer, call.conversation, created))
        elif answer is None:  # a token count the provider left to llmedge
            timer.done("ok", None)
            body = json_bytes({"input_tokens": estimate_input_tokens(call.conversation)})
        else:
            timer.done("ok", answer.get("usage"))
            body = json_bytes(answer)
        if gone(request):
            return
        if visit.result == MISS:
            entry = whole_entry(call, answer, body)
            if entry is not None:
                visit.keep(entry)
        _write_document(request, body)

    def _fail(self, reason: Failure, request, timer) -> None:
        timer.failed(reason)
        write_error(request, error_from_failure(reason))


def _write_document(request, body: bytes) -> None:
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    request.write(body)
    request.finish()


class Messages(ModelCall):
    """
    C{POST /v1/messages}, whose one child is C{count_tokens}.
    """

    counter: ModelCall | None = None

    def getChildWithDefault(self, path: bytes, request):
        if path == b"count_tokens" and self.counter is not None:
            return self.counter
        return super().getChildWithDefault(path, request)


class Models(Endpoint):
    """
    C{GET /v1/models} lists the public model names; C{GET /v1/models/<name>}
    describes one (names may contain slashes, as C{org/model} ones do).
    """

    isLeaf = True

    def __init__(self, router: Router) -> None:
        super().__init__()
        self._router = router

    def render_GET(self, request) -> bytes:
        name = b"/".join(request.postpath).decode("utf-8", "replace")
        if not name:
            return write_json(request, self._router.list_models())
        return write_json(request, self._router.describe(name))


def build_v1(router: Router, clock: IReactorTime, keepalive: float = 0.0,
             tokens: TokenLimiter | None = None, max_held: int | None = None,
             cache: ResponseCache | None = None) -> Node:
    """
    The C{/v1} subtree; with C{tokens}, calls are held to the keys' token
    budgets; C{max_held} bounds what a translated Responses stream holds
    to repeat at its end (C{upstream.max_response_bytes}); with C{cache},
    answers are kept and given again (L{llmedge.web.cached}).
    """
    responses = RESPONSES_FRONT
    if max_held is not None:
        responses = replace(responses, stream_encoder=partial(
            responses.stream_encoder, max_bytes=max_held))

    def call(front: Front, **kwargs) -> ModelCall:
        return ModelCall(router, front, clock, keepalive, tokens, cache, **kwargs)

    v1 = Node()
    chat = Node()
    chat.putChild(b"completions", call(CHAT_FRONT))
    v1.putChild(b"chat", chat)
    v1.putChild(b"completions", call(COMPLETIONS_FRONT))
    v1.putChild(b"embeddings", call(EMBEDDINGS_FRONT))
    v1.putChild(b"responses", call(responses))
    messages = Messages(router, MESSAGES_FRONT, clock, keepalive, tokens, cache)
    messages.counter = call(COUNT_TOKENS_FRONT)
    v1.putChild(b"messages", messages)
    v1.putChild(b"models", Models(router))
    return v1
