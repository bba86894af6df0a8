# -*- test-case-name: tests.unit.test_anthropic_translate -*-
"""
Anthropic Messages responses, streams and errors rewritten in OpenAI's shape.

A client of llmedge speaks OpenAI whatever model answers, so what Anthropic
sends back is translated before the client sees any of it: the message
becomes a C{chat.completion}, each server-sent event the C{chat.completion.chunk}s
OpenAI would have sent at that point, and each error the OpenAI error an SDK
knows how to raise. The model named in the output is the public name the
client asked for, never the upstream one.

Anthropic counts cached prompt tokens apart from C{input_tokens}; OpenAI's
C{prompt_tokens} counts every prompt token, so they are added back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from llmedge.errors import APIError

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The HTTP status Anthropic documents for each error type, for errors that
# arrive inside a stream after its 200.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# Provider messages are passed on, but a runaway one is cut short.
_MESSAGE_LIMIT = 500


def finish_reason(stop_reason: str | None) -> str:
    """
    OpenAI's C{finish_reason} for Anthropic's C{stop_reason}. Reasons OpenAI
    has no word for (C{pause_turn}, new ones) read as an ordinary stop.
    """
    return _FINISH_REASONS.get(stop_reason, "stop")


def openai_usage(usage: dict) -> dict[str, int]:
    """
    OpenAI's usage object for Anthropic's, cached prompt tokens included.
    """
    prompt = sum(
        usage.get(key) or 0
        for key in ("input_tokens", "cache_read_input_tokens",
                    "cache_creation_input_tokens")
    )
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def to_chat_completion(message: dict, model: str, created: int) -> dict:
    """
    The C{chat.completion} for Anthropic's non-streamed C{message}, naming
    C{model}, the model the client asked for.
    """
    blocks = message.get("content") or []
    texts = [b.get("text") or "" for b in blocks if b.get("type") == "text"]
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
    }
    calls = [
        {
            "id": block.get("id"),
            "type": "function",
            "function": {
                "name": block.get("name"),
                "arguments": json.dumps(block.get("input") or {}),
            },
        }
        for block in blocks
        if block.get("type") == "tool_use"
    ]
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + message["id"],
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": None,
            "finish_reason": finish_reason(message.get("stop_reason")),
        }],
        "usage": openai_usage(message.get("usage") or {}),
    }


class StreamTranslator:
    """
    Anthropic's server-sent events for one message, as OpenAI chunks.

    Anthropic numbers content blocks across text and tool calls; OpenAI
    numbers tool calls alone, so the translator remembers which block is
    which tool call. Usage is known from C{message_start} (the prompt) and
    final after C{message_delta}, whose C{output_tokens} are cumulative.

    @ivar usage: the OpenAI usage object so far, or L{None} before
        C{message_start}; the proxy counts tokens from it even when the
        client did not ask for usage, and even when the stream breaks.
    """

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._id = ""
        self._anthropic_usage: dict[str, int] = {}
        self._tool_of_block: dict[int, int] = {}
        self.usage: dict[str, int] | None = None

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        chunk = {
            "id": "chatcmpl-" + self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _count(self, usage: dict | None) -> None:
        self._anthropic_usage.update(
            (key, value) for key, value in (usage or {}).items()
            if isinstance(value, int)
        )
        self.usage = openai_usage(self._anthropic_usage)

    def _tool_call(self, block_index: Any, **call: Any) -> dict:
        index = self._tool_of_block.get(block_index)
        if index is None:
            index = self._tool_of_block[block_index] = len(self._tool_of_block)
        return self._chunk({"tool_calls": [{"index": index, **call}]})

    def feed(self, event_type: str, data: dict) -> list[dict]:
        """
        The chunks to send for one Anthropic event: C{event_type} is its
        C{event:} field, C{data} its decoded C{data:}. Events this does not
        know (Anthropic may add some) and blocks other than text and tool
        use (thinking) send nothing.

        @raise APIError: for an C{error} event, mapped as
            L{error_from_anthropic} maps an error response.
        """
        if event_type == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id") or ""
            self._count(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if event_type == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            function = {"name": block.get("name"), "arguments": ""}
            return [self._tool_call(
                data.get("index"), id=block.get("id"), type="function",
                function=function,
            )]
        if event_type == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if delta.get("type") == "input_json_delta":
                function = {"arguments": delta.get("partial_json") or ""}
                return [self._tool_call(data.get("index"), function=function)]
            return []
        if event_type == "message_delta":
            self._count(data.get("usage"))
            reason = finish_reason((data.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, reason)]
        if event_type == "message_stop" and self._include_usage:
            last = self._chunk({})
            last.update(choices=[], usage=self.usage)
            return [last]
        if event_type == "error":
            error = data.get("error") or {}
            status = _STATUS_OF_TYPE.get(error.get("type"), 500)
            raise _mapped(status, _message_of(error))
        return []


def _message_of(error: Any) -> str | None:
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message.strip():
        return message[:_MESSAGE_LIMIT]
    return None


def _parse(body: bytes) -> str | None:
    """
    The message of an Anthropic error document, or L{None} if C{body} is
    not one (an HTML page from a proxy in front, say): such bodies are never
    shown, since they may be anything.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return _message_of(document.get("error"))


def error_from_anthropic(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> APIError:
    """
    The OpenAI error to report for an Anthropic error response.

    @param headers: the response headers; C{retry-after} is passed on.
    """
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    retry_after = lowered.get("retry-after")
    extra = [(b"Retry-After", retry_after.encode("latin-1"))] if retry_after else []
    return _mapped(status, _parse(body), extra)


def _mapped(
    status: int, said: str | None, headers: Iterable[tuple[bytes, bytes]] = ()
) -> APIError:
    """
    The error for Anthropic's C{status} and message. Failures of llmedge's
    own account with the provider (credentials, billing) and of the provider
    itself are 5xx: the client's request was not at fault.
    """
    if status in (401, 403):
        return APIError(
            502,
            "The model's provider rejected llmedge's credentials; the server's "
            "configuration needs fixing, your API key is not at fault.",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    if status == 402:
        return APIError(
            502,
            "The model's provider refused the request for a billing reason on "
            "llmedge's account.",
            type="upstream_error",
            code="upstream_error",
        )
    if status == 404:
        if said and "model" in said.lower():
            return APIError(404, said, param="model", code="model_not_found")
        return APIError(404, said or "The model's provider found nothing to answer.")
    if status == 413:
        return APIError(
            413,
            said or "The request is too large for the model's provider.",
            code="request_too_large",
        )
    if status == 429:
        return APIError(
            429,
            said or "The model's provider is rate limiting requests; retry later.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if 400 <= status < 500:
        return APIError(400, said or "The model's provider rejected the request.")
    if status == 529:
        return APIError(
            503,
            "The model's provider is overloaded; retry later."
            + (f" ({said})" if said else ""),
            type="upstream_error",
            code="upstream_overloaded",
            headers=headers,
        )
    return APIError(
        502,
        f"The model's provider failed to answer (HTTP {status})"
        + (f": {said}" if said else "."),
        type="upstream_error",
        code="upstream_error",
    )
