# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
Anthropic Messages answers as replies, and back: the answer half of the
Messages codec.

Decoding reads what an Anthropic upstream sends (a message, or its
server-sent events) for a client of another dialect; encoding writes what
a Messages client (the anthropic SDKs, Claude Code) expects from any
provider, a whole message here and a stream in
L{llmedge.dialects.messages_stream} (its L{StreamEncoder} is exported
here with the rest of the codec).

Anthropic numbers content blocks across text, thinking and tool calls; a
reply numbers tool calls alone. Anthropic counts cached prompt tokens
apart from C{input_tokens}; a L{Usage} counts every prompt token, so they
are added in decoding and taken out again in encoding.

What an upstream sends is read defensively: a field of the wrong type
reads as absent, so a broken upstream cannot crash the proxy.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.dialects.conversation import Conversation, Reasoning, Text, ToolCall
from llmedge.dialects.messages_errors import error_from_event
from llmedge.dialects.messages_stream import (
    STOP_REASONS, StreamEncoder, anthropic_usage, message_id,
)
from llmedge.dialects.reply import (
    END, LENGTH, Event, Finished, ReasoningDelta, Reply, Started, TextDelta,
    ToolArgumentsDelta, ToolCallStarted, Usage,
)

__all__ = ["StreamDecoder", "StreamEncoder", "decode_reply", "encode_reply"]

_STOPS = {reason: stop for stop, reason in STOP_REASONS.items()}
_STOPS["model_context_window_exceeded"] = LENGTH


def _stop(reason: Any) -> str:
    """
    llmedge's stop for Anthropic's C{stop_reason}; reasons it does not know
    read as the end of the turn.
    """
    return _STOPS.get(reason, END) if isinstance(reason, str) else END


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def _usage(usage: dict) -> Usage:
    cached = _count(usage.get("cache_read_input_tokens"))
    prompt = (_count(usage.get("input_tokens")) + cached
              + _count(usage.get("cache_creation_input_tokens")))
    return Usage(prompt, _count(usage.get("output_tokens")), cached)


def _arguments(tool_input: Any) -> str:
    return json.dumps(tool_input if isinstance(tool_input, dict) else {})


def decode_reply(message: Any) -> Reply:
    """
    The reply an Anthropic C{message} document says: its text, thinking
    and tool use blocks (server tool and other blocks are left out).

    @raise ValueError: if C{message} is not a message.
    """
    if not isinstance(message, dict) or message.get("type") != "message":
        raise ValueError("The document is not an Anthropic message.")
    parts: list[Text | Reasoning | ToolCall] = []
    blocks = message.get("content")
    for block in blocks if isinstance(blocks, list) else ():
        kind = _object(block).get("type")
        if kind == "text":
            parts.append(Text(_string(block.get("text"))))
        elif kind == "thinking":
            parts.append(Reasoning(_string(block.get("thinking")),
                                   _string(block.get("signature")) or None))
        elif kind == "tool_use":
            parts.append(ToolCall(_string(block.get("id")), _string(block.get("name")),
                                  _arguments(block.get("input"))))
    sequence = message.get("stop_sequence")
    return Reply(
        _string(message.get("id")), parts, _stop(message.get("stop_reason")),
        _usage(_object(message.get("usage"))),
        sequence if isinstance(sequence, str) else None,
    )


def _input(arguments: str) -> dict:
    """
    Tool call arguments as the object Messages carries; text that is not
    a JSON object (a provider's broken output) reads as no arguments.
    """
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _block(part: Text | Reasoning | ToolCall) -> dict:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Reasoning):
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    return {"type": "tool_use", "id": part.id, "name": part.name,
            "input": _input(part.arguments)}


def encode_reply(reply: Reply, conversation: Conversation, created: int) -> dict:
    """
    The Messages C{message} for C{reply}, naming the model the client
    asked for. Empty text is left out: sent back, Anthropic would refuse it.
    """
    return {
        "id": message_id(reply.id),
        "type": "message",
        "role": "assistant",
        "model": conversation.model,
        "content": [_block(p) for p in reply.parts if not isinstance(p, Text) or p.text],
        "stop_reason": STOP_REASONS.get(reply.stop, "end_turn"),
        "stop_sequence": reply.stop_sequence,
        "usage": anthropic_usage(reply.usage),
    }


class StreamDecoder:
    """
    An Anthropic stream's events, as reply events.

    Anthropic numbers content blocks across text, thinking and tool calls;
    a reply numbers tool calls alone, so the decoder remembers which block
    is which call. Usage is known from C{message_start} (the prompt) and
    final after C{message_delta}, whose counts are cumulative.

    @ivar usage: OpenAI's usage object so far, or L{None} before
        C{message_start}; the proxy counts tokens from it even when the
        stream breaks.
    """

    def __init__(self) -> None:
        self.usage: dict[str, int] | None = None
        self._counts: dict[str, int] = {}
        self._calls: dict[int, int] = {}
        self._stop: Any = None
        self._sequence: Any = None

    def _count(self, usage: Any) -> None:
        self._counts.update(
            (key, value) for key, value in _object(usage).items() if type(value) is int
        )
        self.usage = _usage(self._counts).openai()

    def feed(self, event_type: str, data: dict) -> list[Event]:
        """
        The events one Anthropic event stands for: C{event_type} is its
        C{event:} field, C{data} its decoded C{data:}. Events this does not
        know (C{ping}, Anthropic's next ones) and deltas of blocks other
        than text, thinking and tool use stand for nothing.

        @raise APIError: for an C{error} event, mapped as an error response
            of the status Anthropic documents for its type is.
        """
        data = _object(data)
        if event_type == "message_start":
            message = _object(data.get("message"))
            self._count(message.get("usage"))
            return [Started(_string(message.get("id")), _usage(self._counts))]
        if event_type == "content_block_start":
            return self._start(data.get("index"), _object(data.get("content_block")))
        if event_type == "content_block_delta":
            return self._delta(data.get("index"), _object(data.get("delta")))
        if event_type == "message_delta":
            delta = _object(data.get("delta"))
            self._stop, self._sequence = delta.get("stop_reason"), delta.get("stop_sequence")
            self._count(data.get("usage"))
        elif event_type == "message_stop":
            sequence = self._sequence if isinstance(self._sequence, str) else None
            return [Finished(_stop(self._stop), _usage(self._counts), sequence)]
        elif event_type == "error":
            raise error_from_event(data)
        return []

    def _start(self, index: Any, block: dict) -> list[Event]:
        """
        A block begins: a tool call is announced, and whatever a block
        already holds (Anthropic starts them empty; look-alikes may not)
        is passed on as a delta.
        """
        kind = block.get("type")
        if kind == "tool_use":
            call = self._calls[index if type(index) is int else -1] = len(self._calls)
            events: list[Event] = [ToolCallStarted(
                call, _string(block.get("id")), _string(block.get("name")))]
            if _object(block.get("input")):
                events.append(ToolArgumentsDelta(call, _arguments(block["input"])))
            return events
        if kind == "text" and _string(block.get("text")):
            return [TextDelta(block["text"])]
        if kind == "thinking" and _string(block.get("thinking")):
            return [ReasoningDelta(block["thinking"])]
        return []

    def _delta(self, index: Any, delta: dict) -> list[Event]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [TextDelta(_string(delta.get("text")))]
        if kind == "input_json_delta":
            call = self._calls.get(index if type(index) is int else -1)
            if call is None:
                return []
            return [ToolArgumentsDelta(call, _string(delta.get("partial_json")))]
        if kind == "thinking_delta":
            return [ReasoningDelta(_string(delta.get("thinking")))]
        if kind == "signature_delta":
            return [ReasoningDelta("", _string(delta.get("signature")) or None)]
        return []
