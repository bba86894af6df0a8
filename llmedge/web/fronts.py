# -*- test-case-name: tests.unit.test_fronts -*-
"""
The front ends: what differs between the dialects a client may speak.

Every model call goes through the same steps (L{llmedge.web.v1.ModelCall}):
read the body, check it, route it by model, call the provider, write the
answer. A L{Front} holds what a dialect puts into those steps: how a body
is checked, which provider method answers it, and how each kind of answer
a provider may give is written in the client's dialect - its own bytes
passed through (L{Front.framing} for streams), or a translated reply
encoded by the dialect's codec (L{Front.encode_reply},
L{Front.stream_encoder}).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmedge.dialects import chat_reply, messages_reply, responses_reply
from llmedge.dialects.messages_errors import error_body as anthropic_error_body
from llmedge.errors import APIError
from llmedge.jsonwire import json_bytes
from llmedge.providers.base import CHAT, COMPLETIONS, COUNT_TOKENS, EMBEDDINGS, MESSAGES, RESPONSES
from llmedge.validation import validate_chat, validate_completion, validate_embedding
from llmedge.web.sse import CHAT_FRAMING, AsIs, IFraming


@dataclass(frozen=True)
class Front:
    """
    One dialect's endpoint.

    @ivar endpoint: the call's endpoint (L{llmedge.providers.base}); the
        metrics' and the access event's C{endpoint}.
    @ivar method: the L{llmedge.providers.base.IProvider} method that
        answers it.
    @ivar validate: checks a body (raising a 400); L{None} for dialects
        whose codec checks the body as it decodes it into a conversation.
    @ivar client_headers: the client's headers a provider of the same
        dialect is given.
    @ivar counts_tokens: whether the call is held to the key's token budget.
    """

    endpoint: str
    method: str
    validate: Callable[[Any], Any] | None = None
    encode_reply: Callable | None = None
    stream_encoder: Callable | None = None
    framing: IFraming = CHAT_FRAMING
    client_headers: tuple[bytes, ...] = ()
    counts_tokens: bool = True

    @property
    def decodes(self) -> bool:
        """
        Whether the body is checked by decoding it as a conversation.
        """
        return self.validate is None


def _anthropic_error_event(error: APIError) -> bytes:
    return b"event: error\ndata: " + anthropic_error_body(error) + b"\n\n"


def _responses_error_event(error: APIError) -> bytes:
    """
    The Responses API's C{error} event, for a stream passed through from
    an upstream that broke (the encoder of a translated stream sends
    C{response.failed} instead, as it knows the response so far).
    """
    data = json_bytes({"type": "error", "code": error.code or error.type,
                       "message": error.message, "param": error.param})
    return b"event: error\ndata: " + data + b"\n\n"


_ANTHROPIC_HEADERS = (b"anthropic-version", b"anthropic-beta")

CHAT_FRONT = Front(CHAT, "chat_completion", validate_chat, chat_reply.encode_reply,
                   chat_reply.StreamEncoder)
COMPLETIONS_FRONT = Front(COMPLETIONS, "completion", validate_completion)
EMBEDDINGS_FRONT = Front(EMBEDDINGS, "embedding", validate_embedding)
RESPONSES_FRONT = Front(RESPONSES, "responses", None, responses_reply.encode_reply,
                        responses_reply.StreamEncoder, AsIs(_responses_error_event))
MESSAGES_FRONT = Front(MESSAGES, "messages", None, messages_reply.encode_reply,
                       messages_reply.StreamEncoder, AsIs(_anthropic_error_event),
                       _ANTHROPIC_HEADERS)
COUNT_TOKENS_FRONT = Front(COUNT_TOKENS, "count_tokens", None, client_headers=_ANTHROPIC_HEADERS,
                           counts_tokens=False)
