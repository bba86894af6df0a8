# -*- test-case-name: tests.unit.test_anthropic_provider -*-
"""
The C{anthropic} provider: chat completions answered by Anthropic's
Messages API, translated both ways (L{anthropic_request},
L{anthropic_response}) so clients keep speaking OpenAI.

Anthropic has no legacy completions and no embeddings: asking a model
routed here for those is the client's error (400), not a provider failure.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, fail, inlineCallbacks
from zope.interface import implementer

from llmedge.errors import invalid_request
from llmedge.providers.anthropic_request import DEFAULT_MAX_TOKENS, to_messages_request
from llmedge.providers.anthropic_response import (
    StreamTranslator,
    error_from_anthropic,
    to_chat_completion,
)
from llmedge.providers.base import Call, IProvider
from llmedge.providers.chunks import ReplayStream, completion_chunks
from llmedge.providers.events import UpstreamStream
from llmedge.providers.upstream import Upstream
from llmedge.providers.upstream_errors import DEPLOYMENT, HOST, RATE_LIMIT, malformed

API_VERSION = "2023-06-01"


@implementer(IProvider)
class AnthropicProvider:
    """
    @param upstream: the connection to the provider (name, HTTP client, headers).
    @param base_url: the API root, e.g. C{https://api.anthropic.com}.
    """

    def __init__(
        self,
        upstream: Upstream,
        base_url: str,
        api_key: str | None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        version: str = API_VERSION,
    ) -> None:
        self.name = upstream.name
        root = base_url.rstrip("/")
        self._url = (root if root.endswith("/v1") else root + "/v1").encode("ascii") + b"/messages"
        self._clock = upstream.clock
        self._max_tokens = default_max_tokens
        self._upstream = upstream
        upstream.headers[b"anthropic-version"] = version.encode()
        if api_key:
            upstream.headers[b"x-api-key"] = api_key.encode()

    def completion(self, call: Call, model: str) -> Deferred:
        return fail(self._unsupported("/v1/completions", call))

    def embedding(self, call: Call, model: str) -> Deferred:
        return fail(self._unsupported("/v1/embeddings", call))

    def _unsupported(self, path: str, call: Call):
        error = invalid_request(
            f"The model `{call.model}` is served by Anthropic, which has no {path}.",
            param="model")
        error.retryable = False
        return error

    @inlineCallbacks
    def chat_completion(self, call: Call, model: str):
        body = json.dumps(to_messages_request(call.body, model, self._max_tokens)).encode()
        upstream = self._upstream
        response = yield upstream.post(self._url, call.headers, body)
        if response.code != 200:
            payload = yield upstream.read_error(response)
            raise self._error(response, payload or b"")
        created = int(self._clock.seconds())
        headers = upstream.relayed(response)
        include = (call.body.get("stream_options") or {}).get("include_usage") is True
        if call.stream and upstream.streams(response):
            translator = StreamTranslator(call.model, created, include)
            return UpstreamStream(self.name, response, EventTranslation(translator), headers,
                                  max_event=upstream.bounds.event)
        _, message = yield upstream.read_json(response)
        if message.get("type") != "message":
            raise malformed(self.name, "a body that is not a message")
        completion = to_chat_completion(message, call.model, created)
        if not call.stream:
            return completion
        # A server that ignored "stream": its whole answer, streamed.
        return ReplayStream(completion_chunks(completion, include), completion.get("usage"),
                            headers)

    def _error(self, response, payload: bytes):
        retry = self._upstream.retry_after(response)
        headers = {"retry-after": retry[0][1].decode()} if retry else {}
        error = error_from_anthropic(response.code, payload, headers)
        # Refused credentials or billing are the provider account's, and
        # another target may be on another account: retryable, like 5xx.
        error.retryable = response.code >= 500 or response.code in (401, 402, 403, 429)
        error.provider = self.name
        error.scope = (RATE_LIMIT if response.code == 429
                       else HOST if response.code in (401, 402, 403) else DEPLOYMENT)
        return error


class EventTranslation:
    """
    Translate each Anthropic event into the OpenAI chunks it stands for.
    """

    def __init__(self, translator: StreamTranslator) -> None:
        self._translator = translator

    @property
    def usage(self) -> dict | None:
        return self._translator.usage

    def __call__(self, event, data: bytes, deliver) -> bool:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("not an object")
        kind = (event or b"").decode("ascii", "replace") or document.get("type", "")
        for chunk in self._translator.feed(kind, document):
            deliver(json.dumps(chunk, separators=(",", ":")).encode())
        return kind == "message_stop"
