# -*- test-case-name: tests.unit.test_openai_provider -*-
"""
The C{openai} provider: OpenAI and every server speaking its API (vLLM,
Ollama, LM Studio, llama.cpp, Azure-style gateways).

The body goes upstream as the client sent it whenever that is possible (the
model name is the same and nothing needs adding): no parse and re-serialise
on the hot path, and fields llmedge has never heard of reach the server
intact. Answers come back the same way: the JSON is parsed once, for its
token usage, and relayed byte for byte.

For streams llmedge asks for C{stream_options.include_usage} (to count
tokens) when the client did not, and then keeps that extra usage to itself
(L{llmedge.providers.openai_stream}): the client sees exactly the chunks it
asked for. A server that ignores C{"stream": true} and answers in one JSON
piece is streamed that answer (L{llmedge.providers.chunks}); any other kind
of body to a stream request is a malformed answer, refused before the
client has been sent anything, so the next target can be tried.

Clients of the other dialects (Responses, Anthropic Messages) are served
through chat completions, translated both ways (L{OpenAIProvider.converse});
a server marked as serving C{/responses} itself (C{responses = true}: OpenAI
does, most compatible servers do not) gets Responses requests as they came.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from llmedge.dialects.chat import encode_request as encode_chat
from llmedge.dialects.chat_reply import decode_reply as decode_chat_reply
from llmedge.dialects.responses import usage_of as responses_usage
from llmedge.errors import APIError
from llmedge.jsonwire import sendable_bytes
from llmedge.providers.base import EMBEDDINGS, Answer, Call, IProvider, deferred
from llmedge.providers.chunks import ReplayStream, completion_chunks
from llmedge.providers.events import UpstreamStream
from llmedge.providers.openai_stream import ChunkRelay
from llmedge.providers.translated import ChatEvents, ResponsesPassThrough, replayed, reply_stream
from llmedge.providers.upstream import Upstream
from llmedge.providers.upstream_errors import HOST, RATE_LIMIT, REQUEST, malformed, upstream_error


def error_from_openai(
    provider: str, status: int, body: bytes | None, retry: Sequence[tuple[bytes, bytes]] = ()
) -> APIError:
    """
    The client's error for an upstream error response.

    The upstream's own OpenAI error is kept where it speaks of the request
    (4xx); a 401/403 means llmedge's key for the provider was refused, which
    is no fault of the client's key, so it becomes a 502; 5xx become 502
    (503 stays 503); 429 and 503 keep the upstream's wait (C{retry}, the
    C{Retry-After} header as L{Upstream.retry_after} rebuilt it). Bodies
    that are not OpenAI errors (an HTML page from a load balancer, a body
    over the bound, L{None}) are never shown; the fields of one that is
    are passed on only when they are strings of a sane length.
    """
    upstream = _openai_error(body) if body else None
    said = _text(upstream, "message", _MESSAGE_LIMIT, cut=True)
    if status == 429:
        # A request larger than the account's tokens per minute is refused
        # with a 429 by OpenAI: about this request, not the deployment.
        scope = REQUEST if (said or "").startswith("Request too large") else RATE_LIMIT
        return upstream_error(provider, 429, said or f"Provider '{provider}' is rate limiting.",
                              "rate_limit_exceeded", type="rate_limit_error", headers=retry,
                              scope=scope)
    if status in (401, 403):
        return upstream_error(
            provider, 502, f"Provider '{provider}' refused llmedge's credentials.",
            "upstream_auth_failed", scope=HOST)
    if status >= 500 or upstream is None:
        message = f"Provider '{provider}' failed with status {status}."
        if said:
            message += f" It said: {said}"
        out = 503 if status == 503 else 502
        return upstream_error(provider, out, message, "upstream_error",
                              retryable=status >= 500, headers=retry if out == 503 else ())
    error = APIError(status, said or "Upstream error.",
                     type=_text(upstream, "type", 100) or "invalid_request_error",
                     param=_text(upstream, "param", 200), code=_text(upstream, "code", 100))
    error.retryable = False
    return error


#: The longest upstream error message passed on; longer ones are cut.
_MESSAGE_LIMIT = 1000


def _text(error: dict[str, Any] | None, field: str, limit: int, cut: bool = False) -> str | None:
    """
    A field of an upstream error, when it is a non-empty string of at most
    C{limit} characters; a longer one is dropped, or with C{cut} (a message,
    which reads fine shortened) cut to C{limit}.
    """
    value = error.get(field) if error is not None else None
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= limit:
        return value
    return value[:limit] + "…" if cut else None


def _openai_error(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else None


@implementer(IProvider)
class OpenAIProvider:
    """
    @param upstream: the connection to the provider (name, HTTP client, headers).
    @param base_url: the API root, e.g. C{https://api.openai.com/v1}.
    @param api_key: the provider's key, sent as a Bearer token; L{None} for
        servers that need none.
    """

    def __init__(self, upstream: Upstream, base_url: str, api_key: str | None,
                 responses: bool = False) -> None:
        self.name = upstream.name
        self._base = base_url.rstrip("/").encode("ascii")
        self._upstream = upstream
        self._native_responses = responses
        if api_key:
            upstream.set_header(b"authorization", b"Bearer " + api_key.encode())

    def _post(self, path: bytes, headers: dict[str, str], body: bytes, answered,
              *args) -> Deferred:
        """
        POST C{body} to the API's C{path}: a 200 response goes to
        C{answered(response, *args)}; any other status fails with the
        client's error (L{Upstream.exchange}).
        """
        return self._upstream.exchange(self._base + path, headers, body, self._refused,
                                       answered, *args)

    def _refused(self, payload: bytes | None, response):
        raise error_from_openai(self.name, response.code, payload,
                                self._upstream.retry_after(response))

    def responses(self, call: Call, model: str) -> Deferred:
        if self._native_responses:
            return self._pass_responses(call, model)
        return self.converse(call, model)

    def messages(self, call: Call, model: str) -> Deferred:
        return self.converse(call, model)

    def count_tokens(self, call: Call, model: str) -> Deferred:
        return succeed(None)  # no such endpoint in OpenAI's API: llmedge estimates

    @deferred
    def converse(self, call: Call, model: str) -> Deferred:
        """
        Answer a client of another dialect through chat completions, the
        one endpoint every OpenAI-compatible server has: the conversation
        is encoded as a chat request, and the answer decoded into reply
        events for the client's codec.
        """
        conversation = call.conversation
        conversation.refuse_unsupported()
        body = sendable_bytes(encode_chat(conversation, model))
        return self._post(b"/chat/completions", call.headers, body, self._conversed,
                          conversation.stream)

    def _conversed(self, response, stream: bool):
        upstream = self._upstream
        headers = upstream.relayed(response)
        if stream and upstream.streams(response):
            return reply_stream(UpstreamStream(self.name, response, ChatEvents(), headers,
                                               max_event=upstream.bounds.event))
        return upstream.with_json(response, self._reply, stream, headers)

    def _reply(self, read: tuple[bytes, dict], stream: bool, headers):
        try:
            reply = decode_chat_reply(read[1])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise self._not_an_answer(read[1]) from None
        return replayed(reply, headers) if stream else reply

    @deferred
    def _pass_responses(self, call: Call, model: str) -> Deferred:
        """
        A Responses request to a server that serves C{/responses} itself:
        sent as the client sent it, answered byte for byte.
        """
        body = call.raw
        if model != call.model or not body:
            body = sendable_bytes({**call.body, "model": model})
        return self._post(b"/responses", call.headers, body, self._responded, call.stream)

    def _responded(self, response, stream: bool):
        upstream = self._upstream
        headers = upstream.relayed(response)
        if stream and upstream.streams(response):
            return UpstreamStream(self.name, response, ResponsesPassThrough(), headers,
                                  max_event=upstream.bounds.event)
        return upstream.with_json(response, self._response, stream, headers)

    def _response(self, read: tuple[bytes, dict], stream: bool, headers) -> Answer:
        payload, document = read
        if document.get("object") != "response":
            raise self._not_an_answer(document)
        if stream:
            raise malformed(self.name, "an answer that is not a stream")
        return Answer(payload, responses_usage(document), headers, document)

    def chat_completion(self, call: Call, model: str) -> Deferred:
        return self._call(b"/chat/completions", call, model)

    def completion(self, call: Call, model: str) -> Deferred:
        return self._call(b"/completions", call, model)

    def embedding(self, call: Call, model: str) -> Deferred:
        return self._call(b"/embeddings", call, model)

    def _body(self, call: Call, model: str) -> tuple[bytes, bool]:
        """
        The upstream body, and whether its usage chunk is ours alone.
        """
        body, strip_usage = call.body, False
        changes: dict[str, Any] = {}
        if model != call.model:
            changes["model"] = model
        if call.stream and call.endpoint != EMBEDDINGS:
            options = body.get("stream_options") or {}
            if options.get("include_usage") is not True:
                changes["stream_options"] = {**options, "include_usage": True}
                strip_usage = True
        if not changes and call.raw:
            return call.raw, False
        return sendable_bytes({**body, **changes}), strip_usage

    @deferred
    def _call(self, path: bytes, call: Call, model: str) -> Deferred:
        """
        A request of the client's own dialect, sent as it came but for
        what L{_body} changes; the answer relayed as it comes.

        Plain callbacks (L{Upstream.exchange}), not L{inlineCallbacks}:
        this is the path of every proxied request, where a generator driven
        through Deferreds cost more than the callbacks it stands for.
        """
        body, strip_usage = self._body(call, model)
        return self._post(path, call.headers, body, self._called, call, strip_usage)

    def _called(self, response, call: Call, strip_usage: bool):
        upstream = self._upstream
        headers = upstream.relayed(response)
        if call.stream and call.endpoint != EMBEDDINGS:
            if upstream.streams(response):
                return UpstreamStream(self.name, response, ChunkRelay(strip_usage), headers,
                                      max_event=upstream.bounds.event)
            # A server that ignored "stream": its whole answer, streamed.
            return upstream.with_json(response, self._replay, not strip_usage, headers)
        return upstream.with_json(response, self._answer, call.endpoint, headers)

    def _answer(self, read: tuple[bytes, dict], endpoint: str, headers) -> Answer:
        payload, document = read
        if not isinstance(document.get("data" if endpoint == EMBEDDINGS else "choices"), list):
            raise self._not_an_answer(document)
        return Answer(payload, document.get("usage"), headers, document)

    def _not_an_answer(self, document: dict) -> APIError:
        """
        The error for a 200 whose JSON is not an answer: the error it holds
        instead (some gateways answer errors with a 200), or a malformed
        answer. A client is never shown a 200 it cannot read as one.
        """
        error = document.get("error")
        said = _text(error if isinstance(error, dict) else None, "message", _MESSAGE_LIMIT,
                     cut=True)
        if said is None:
            return malformed(self.name, "a body that is not an answer")
        return upstream_error(self.name, 502,
                              f"Provider '{self.name}' answered with an error: {said}",
                              "upstream_error")

    def _replay(self, read: tuple[bytes, dict], include_usage: bool, headers) -> ReplayStream:
        """
        The stream a complete answer (C{read}, its bytes and document)
        stands for, for a client that asked for a stream from a server that
        answered in one piece.
        """
        document = read[1]
        if not isinstance(document.get("choices"), list):
            raise self._not_an_answer(document)
        try:
            events = completion_chunks(document, include_usage)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise malformed(self.name, "an answer of an unexpected shape") from None
        usage = document.get("usage")
        return ReplayStream(events, usage if isinstance(usage, dict) else None, headers)
