# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
What a provider is: the interface between llmedge's HTTP front and a model
backend (the embedded mock, an OpenAI-compatible server, Anthropic).

A provider receives a validated L{Call} and the upstream model name its route
chose, and returns a L{Deferred}. For a plain request the Deferred fires with
the response document (a C{dict} in OpenAI's shape, or an L{Answer} holding
it as bytes). For C{"stream": true} it
fires with an L{IEventStream}: the front registers it as the producer of the
response, so a slow client pauses the provider (back-pressure), and stopping
it cancels the work behind it.

Cancelling the Deferred returned by a provider must stop whatever the
provider started (timers, upstream connections): deadlines and client
disconnects rely on it.
"""

from __future__ import annotations

import functools

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from zope.interface import Attribute, Interface

CHAT = "chat.completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
MESSAGES = "messages"
COUNT_TOKENS = "messages.count_tokens"


def _decoder(endpoint: str) -> Callable[[dict], Any]:
    """
    The function that reads a request of C{endpoint} as a conversation.
    """
    if endpoint == CHAT:
        from llmedge.dialects.chat import decode_request
    elif endpoint == RESPONSES:
        from llmedge.dialects.responses import decode_request
    elif endpoint == MESSAGES:
        from llmedge.dialects.messages import decode_request
    elif endpoint == COUNT_TOKENS:
        from llmedge.dialects.messages import decode_request as decode_messages

        def decode_request(body: dict) -> Any:
            # A token count is a Messages request without max_tokens.
            return decode_messages({"max_tokens": 1, **body})
    else:
        raise ValueError(f"{endpoint} requests are not conversations")
    return decode_request


@dataclass(frozen=True)
class Call:
    """
    One client request, as the providers see it.

    @ivar endpoint: L{CHAT}, L{COMPLETIONS}, L{EMBEDDINGS}, L{RESPONSES},
        L{MESSAGES} or L{COUNT_TOKENS}: the client's dialect.
    @ivar body: the validated JSON body; unknown fields are kept.
    @ivar raw: the body exactly as received, for providers that forward it.
    @ivar request_id: the id the client sees in C{x-request-id}.
    @ivar headers: headers to send upstream (request id, trace context).
    @ivar client_headers: the client's own headers a provider of its
        dialect is given (C{anthropic-version}, C{anthropic-beta}), by
        lower-case name.
    """

    endpoint: str
    body: dict[str, Any]
    raw: bytes = b""
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    client_headers: dict[str, str] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def conversation(self):
        """
        The request as an L{llmedge.dialects.conversation.Conversation},
        decoded from its dialect once, when a provider first needs to
        translate it (a request passed through never pays for it).

        @raise llmedge.errors.APIError: 400 for what the dialect's codec
            refuses.
        """
        memo = self._memo
        if "conversation" not in memo:
            memo["conversation"] = _decoder(self.endpoint)(self.body)
        return memo["conversation"]

    @property
    def model(self) -> str:
        """
        The public model name the client asked for.
        """
        return self.body["model"]

    @property
    def stream(self) -> bool:
        """
        Whether the client asked for a server-sent-event stream.
        """
        return self.body.get("stream") is True


@dataclass(frozen=True)
class Answer:
    """
    A complete answer in its wire form, as an upstream sent it: relayed
    byte for byte rather than re-serialised.

    @ivar body: the JSON document.
    @ivar usage: its C{usage} object, for the token counts.
    @ivar headers: upstream headers to pass on (its rate limits).
    @ivar document: the JSON document parsed, when the provider read it
        already (so the response cache does not parse it again).
    """

    body: bytes
    usage: dict[str, Any] | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    document: dict[str, Any] | None = field(default=None, repr=False, compare=False)


class IEventStream(IPushProducer):
    """
    A stream of server-sent events coming from a provider.

    The provider does not write SSE framing: it delivers the text of each
    C{data:} field, and the front frames it, adds keep-alives and the final
    C{data: [DONE]}.
    """

    usage = Attribute(
        "The OpenAI usage object of the whole stream, once known (by the time "
        "start's Deferred fires), or None: the front counts tokens from it."
    )
    headers = Attribute(
        "Upstream response headers to pass on, as (name, value) byte pairs."
    )

    def start(receiver: Callable[[bytes], None]) -> Deferred[None]:
        """
        Begin delivering events to C{receiver}, one call per event, each the
        JSON text of one chunk (without C{data: } or line ends).

        @return: a Deferred that fires with L{None} after the last event, or
            fails if the stream breaks. Cancelling it (or calling
            C{stopProducing}) stops the stream and the work behind it.
        """


class IBatchedStream(IEventStream):
    """
    An L{IEventStream} whose events come in batches, the events of one
    upstream read, and which says when each batch is over: the front then
    writes a batch to the client in one piece, one transport write where a
    write per event would cost one each.

    A stream that knows no batches (events paced by a clock, a reply told
    from memory) does not provide this: the front writes each of its
    events when it comes. A wrapper provides it when what it wraps does
    (L{llmedge.providers.wrapped.WrappedStream}), and passes C{flush} on.
    """

    def start(
        receiver: Callable[[bytes], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        """
        As L{IEventStream.start}, and call C{flush} (without arguments)
        whenever the events delivered since its last call are all there is
        for now: after each upstream read, even one that held no whole
        event. A receiver that holds events back writes them then, and
        when the returned Deferred fires (a stream may end or fail in the
        middle of a batch). Without C{flush}, as L{IEventStream.start}.
        """


def deferred(method: Callable) -> Callable:
    """
    A provider method whose exceptions reach its caller as a failed
    L{Deferred}, as L{IProvider} promises: what L{inlineCallbacks
    <twisted.internet.defer.inlineCallbacks>} did for the methods it drove,
    done by Twisted's L{maybeDeferred}, which hands the Deferred the
    method returns back as it is.
    """
    @functools.wraps(method)
    def call(*args, **kwargs):
        return maybeDeferred(method, *args, **kwargs)

    return call


class IProvider(Interface):
    """
    A model backend.
    """

    name = Attribute("The provider's configured name, used in logs and errors.")

    def chat_completion(call: Call, model: str) -> Deferred[dict | IEventStream]:
        """
        Answer a C{/v1/chat/completions} call with upstream model C{model}.
        """

    def completion(call: Call, model: str) -> Deferred[dict | IEventStream]:
        """
        Answer a legacy C{/v1/completions} call with upstream model C{model}.
        """

    def embedding(call: Call, model: str) -> Deferred[dict | Answer]:
        """
        Answer a C{/v1/embeddings} call with upstream model C{model}.
        """

    def responses(call: Call, model: str) -> Deferred:
        """
        Answer a C{/v1/responses} call: with an L{Answer} or a stream of
        the Responses API's own events when the provider speaks it (passed
        through), else with an L{llmedge.dialects.reply.Reply} or an
        L{llmedge.dialects.reply.IReplyStream} for the front to encode.
        """

    def messages(call: Call, model: str) -> Deferred:
        """
        Answer a C{/v1/messages} call, as L{responses} does for its dialect.
        """

    def count_tokens(call: Call, model: str) -> Deferred[Answer | None]:
        """
        Count a C{/v1/messages/count_tokens} call's input tokens: the
        provider's own L{Answer}, or L{None} for llmedge's estimate.
        """
