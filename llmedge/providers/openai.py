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
tokens) when the client did not, and then keeps that extra usage chunk to
itself: the client sees exactly the chunks it asked for.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.client import readBody
from zope.interface import implementer

from llmedge.errors import APIError
from llmedge.providers.base import Answer, Call, IProvider
from llmedge.providers.events import UpstreamStream
from llmedge.providers.upstream import (
    Upstream,
    read_json_object,
    relayed_headers,
    upstream_error,
)


def error_from_openai(provider: str, status: int, body: bytes, headers) -> APIError:
    """
    The client's error for an upstream error response.

    The upstream's own OpenAI error is kept where it speaks of the request
    (4xx); a 401/403 means llmedge's key for the provider was refused, which
    is no fault of the client's key, so it becomes a 502; 5xx become 502
    (503 stays 503); 429 keeps its Retry-After. Bodies that are not OpenAI
    errors (an HTML page from a load balancer) are never shown.
    """
    upstream = _openai_error(body)
    retry = [(b"Retry-After", v) for v in headers.getRawHeaders(b"retry-after", [])[:1]]
    if status == 429:
        message = (upstream or {}).get("message") or f"Provider '{provider}' is rate limiting."
        return upstream_error(provider, 429, message, "rate_limit_exceeded",
                              type="rate_limit_error", headers=retry)
    if status in (401, 403):
        return upstream_error(
            provider, 502, f"Provider '{provider}' refused llmedge's credentials.",
            "upstream_auth_failed")
    if status >= 500 or upstream is None:
        message = f"Provider '{provider}' failed with status {status}."
        if upstream is not None and upstream.get("message"):
            message += f" It said: {upstream['message']}"
        out = 503 if status == 503 else 502
        return upstream_error(provider, out, message, "upstream_error",
                              retryable=status >= 500, headers=retry)
    error = APIError(status, str(upstream.get("message") or "Upstream error."),
                     type=str(upstream.get("type") or "invalid_request_error"),
                     param=upstream.get("param"), code=upstream.get("code"))
    error.retryable = False
    return error


def _openai_error(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
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

    def __init__(self, upstream: Upstream, base_url: str, api_key: str | None) -> None:
        self.name = upstream.name
        self._base = base_url.rstrip("/").encode("ascii")
        self._upstream = upstream
        if api_key:
            upstream.headers[b"authorization"] = b"Bearer " + api_key.encode()

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
        if call.stream and call.endpoint != "embeddings":
            options = body.get("stream_options") or {}
            if options.get("include_usage") is not True:
                changes["stream_options"] = {**options, "include_usage": True}
                strip_usage = True
        if not changes and call.raw:
            return call.raw, False
        return json.dumps({**body, **changes}).encode("utf-8"), strip_usage

    @inlineCallbacks
    def _call(self, path: bytes, call: Call, model: str):
        body, strip_usage = self._body(call, model)
        response = yield self._upstream.post(self._base + path, call.headers, body)
        if response.code != 200:
            payload = yield readBody(response)
            raise error_from_openai(self.name, response.code, payload, response.headers)
        if call.stream and call.endpoint != "embeddings":
            return UpstreamStream(
                self.name, response, ChunkRelay(strip_usage), relayed_headers(response))
        payload, document = yield read_json_object(response, self.name)
        return Answer(payload, document.get("usage"), relayed_headers(response))


class ChunkRelay:
    """
    Relay OpenAI chunks byte for byte, checking each is JSON, noting the
    usage, and holding back the usage chunk llmedge asked for itself.
    """

    def __init__(self, strip_usage: bool) -> None:
        self.usage: dict | None = None
        self._strip_usage = strip_usage

    def __call__(self, event, data: bytes, deliver) -> bool:
        if data == b"[DONE]":
            return True
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError("not an object")
        usage = chunk.get("usage")
        if usage and not chunk.get("choices"):
            self.usage = usage
            if self._strip_usage:
                return False
        deliver(data)
        return False
