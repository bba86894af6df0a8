# -*- test-case-name: tests.unit.test_anthropic_provider -*-
"""
The C{anthropic} provider: Anthropic's Messages API.

A Messages client (the Anthropic SDKs, Claude Code) is passed through: its
body goes upstream as it came (the model name swapped in when the route
renames it), with its own C{anthropic-version} and C{anthropic-beta}, and
the answer comes back byte for byte, so features llmedge has never heard of
keep working. Clients of the other dialects are translated: their
conversation is encoded as a Messages request (L{llmedge.dialects.messages})
and the answer decoded into reply events for the client's codec.

Anthropic has no legacy completions and no embeddings: asking a model
routed here for those is the client's error (400), not a provider failure.
"""

from __future__ import annotations


from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from llmedge.dialects.messages import DEFAULT_MAX_TOKENS, encode_request
from llmedge.dialects.messages_errors import error_from_anthropic
from llmedge.dialects.messages_reply import decode_reply
from llmedge.errors import invalid_request
from llmedge.jsonwire import sendable_bytes
from llmedge.providers.base import Answer, Call, IProvider, deferred
from llmedge.providers.events import UpstreamStream
from llmedge.providers.translated import (
    MessagesEvents,
    MessagesPassThrough,
    replayed,
    reply_stream,
)
from llmedge.providers.upstream import Upstream
from llmedge.providers.upstream_errors import DEPLOYMENT, HOST, RATE_LIMIT, malformed

API_VERSION = "2023-06-01"

#: The client headers a Messages request passed through takes along.
CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


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
        self._max_tokens = default_max_tokens
        self._upstream = upstream
        upstream.set_header(b"anthropic-version", version.encode())
        if api_key:
            upstream.set_header(b"x-api-key", api_key.encode())

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

    def chat_completion(self, call: Call, model: str) -> Deferred:
        return self.converse(call, model)

    def responses(self, call: Call, model: str) -> Deferred:
        return self.converse(call, model)

    def messages(self, call: Call, model: str) -> Deferred:
        return self._pass(self._url, call, model)

    def count_tokens(self, call: Call, model: str) -> Deferred:
        return self._pass(self._url + b"/count_tokens", call, model)

    @deferred
    def converse(self, call: Call, model: str) -> Deferred:
        """
        Answer a client of another dialect: its conversation as a Messages
        request, the answer as reply events.
        """
        conversation = call.conversation
        conversation.refuse_unsupported()
        body = sendable_bytes(encode_request(conversation, model, self._max_tokens))
        return self._upstream.exchange(self._url, call.headers, body, self._refused,
                                       self._conversed, conversation.stream)

    def _conversed(self, response, stream: bool):
        upstream = self._upstream
        headers = upstream.relayed(response)
        if stream and upstream.streams(response):
            return reply_stream(UpstreamStream(self.name, response, MessagesEvents(), headers,
                                               max_event=upstream.bounds.event))
        return upstream.with_json(response, self._reply, stream, headers)

    def _reply(self, read: tuple[bytes, dict], stream: bool, headers):
        try:
            reply = decode_reply(read[1])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise malformed(self.name, "a body that is not a message") from None
        # A server that ignored "stream" has its whole answer streamed.
        return replayed(reply, headers) if stream else reply

    @deferred
    def _pass(self, url: bytes, call: Call, model: str) -> Deferred:
        """
        A Messages client's request, sent on as it came with its version
        headers; the answer relayed as it comes.

        Plain callbacks (L{Upstream.exchange}), not L{inlineCallbacks}:
        this is the path of every Messages request, where a generator
        driven through Deferreds cost more than the callbacks it stands for.
        """
        body = call.raw
        if model != call.model or not body:
            body = sendable_bytes({**call.body, "model": model})
        headers = dict(call.headers)
        headers.update((name, value) for name, value in call.client_headers.items()
                       if name in CLIENT_HEADERS)
        return self._upstream.exchange(url, headers, body, self._refused, self._passed, url,
                                       call.stream)

    def _passed(self, response, url: bytes, stream: bool):
        upstream = self._upstream
        relayed = upstream.relayed(response)
        if stream and upstream.streams(response):
            return UpstreamStream(self.name, response, MessagesPassThrough(), relayed,
                                  max_event=upstream.bounds.event)
        return upstream.with_json(response, self._answer, url, stream, relayed)

    def _answer(self, read: tuple[bytes, dict], url: bytes, stream: bool, relayed) -> Answer:
        payload, document = read
        if stream:
            raise malformed(self.name, "an answer that is not a stream")
        if url == self._url:
            if document.get("type") != "message":
                raise malformed(self.name, "a body that is not a message")
            return Answer(payload, decode_reply(document).usage.openai(), relayed, document)
        if not isinstance(document.get("input_tokens"), int):
            raise malformed(self.name, "a token count without input_tokens")
        return Answer(payload, None, relayed)

    def _refused(self, payload: bytes | None, response):
        """
        Raise the client's error for an upstream error answer.
        """
        raise self._error(response, payload or b"")

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
