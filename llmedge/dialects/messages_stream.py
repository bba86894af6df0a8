# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
Reply events as the server-sent events of an Anthropic Messages stream,
for clients that speak Messages (the anthropic SDKs, Claude Code) whatever
provider answers.

Anthropic numbers content blocks across text, thinking and tool calls,
and the SDKs accumulate a stream by those numbers, so the encoder opens
and closes blocks itself, numbering every block from 0 whatever order the
events come in. The message and its usage are written as
L{llmedge.dialects.messages_reply} writes a whole answer, with the pieces
defined here.
"""

from __future__ import annotations

import json

from llmedge.dialects.conversation import Conversation
from llmedge.dialects.messages_errors import error_body
from llmedge.dialects.reply import (
    CONTENT_FILTER, END, LENGTH, PAUSE, STOP_SEQUENCE, TOOL_CALLS, Event, Finished,
    ReasoningDelta, Started, TextDelta, ToolArgumentsDelta, ToolCallStarted, Usage,
)
from llmedge.errors import APIError

__all__ = ["StreamEncoder"]

#: Anthropic's C{stop_reason} for each of llmedge's stops.
STOP_REASONS = {
    END: "end_turn", LENGTH: "max_tokens", STOP_SEQUENCE: "stop_sequence",
    TOOL_CALLS: "tool_use", CONTENT_FILTER: "refusal", PAUSE: "pause_turn",
}


def message_id(reply_id: str) -> str:
    """
    The provider's id as a Messages id: C{msg_} prefixed, unless it is one.
    """
    return reply_id if reply_id.startswith("msg_") else "msg_" + reply_id


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """
    Messages' usage: its C{input_tokens} leave out the cached ones, which
    it counts apart.
    """
    counted = {
        "input_tokens": max(usage.input_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.output_tokens,
    }
    if usage.cached_tokens:
        counted["cache_read_input_tokens"] = usage.cached_tokens
    return counted


def _frame(kind: str, data: dict) -> bytes:
    document = json.dumps({"type": kind, **data}, separators=(",", ":"), ensure_ascii=False)
    return b"event: %s\ndata: %s\n\n" % (kind.encode("ascii"), document.encode("utf-8"))


class StreamEncoder:
    """
    Reply events as the server-sent events of a Messages stream.

    The block open (text, thinking, or one tool call) is closed when a
    block of another kind, or another tool call, starts. A tool call's
    arguments go to its own block, so deltas for a call whose block a
    later one closed (which no provider llmedge knows sends) still reach
    the SDK's accumulator, which goes by block number.
    """

    def __init__(self, conversation: Conversation, created: int) -> None:
        self._model = conversation.model
        self._started = self._finished = False
        self._blocks = 0
        self._open: str | None = None
        self._signed = False
        self._usage = Usage()
        self._call_blocks: dict[int, int] = {}

    def _start(self, reply_id: str, usage: Usage | None) -> bytes:
        self._started = True
        self._usage = usage or Usage()
        message = {
            "id": message_id(reply_id), "type": "message", "role": "assistant",
            "model": self._model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": anthropic_usage(self._usage),
        }
        return _frame("message_start", {"message": message}) + _frame("ping", {})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return _frame("content_block_stop", {"index": self._blocks - 1})

    def _open_block(self, kind: str, block: dict) -> bytes:
        closed = self._close()
        self._open, self._signed = kind, False
        self._blocks += 1
        started = {"index": self._blocks - 1, "content_block": block}
        return closed + _frame("content_block_start", started)

    def _delta(self, index: int, delta: dict) -> bytes:
        return _frame("content_block_delta", {"index": index, "delta": delta})

    def encode(self, event: Event) -> bytes:
        """
        The SSE bytes for one event; nothing after L{Finished}.
        """
        if self._finished or (isinstance(event, Started) and self._started):
            return b""
        if isinstance(event, Started):
            return self._start(event.id, event.usage)
        out = b"" if self._started else self._start("", None)
        if isinstance(event, TextDelta) and event.text:
            if self._open != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            out += self._delta(self._blocks - 1, {"type": "text_delta", "text": event.text})
        elif isinstance(event, ReasoningDelta):
            out += self._reasoning(event)
        elif isinstance(event, ToolCallStarted):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out += self._open_block("tool", block)
            self._call_blocks[event.index] = self._blocks - 1
        elif isinstance(event, ToolArgumentsDelta) and event.index in self._call_blocks:
            delta = {"type": "input_json_delta", "partial_json": event.text}
            out += self._delta(self._call_blocks[event.index], delta)
        elif isinstance(event, Finished):
            out += self._finish(event)
        return out

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        """
        Thinking, in a thinking block; a signature ends its block, so
        thinking after one starts the next.
        """
        if not (event.text or event.signature):
            return b""
        out = b""
        if self._open != "thinking" or (self._signed and event.text):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out += self._open_block("thinking", block)
        if event.text:
            out += self._delta(self._blocks - 1, {"type": "thinking_delta",
                                                  "thinking": event.text})
        if event.signature:
            self._signed = True
            out += self._delta(self._blocks - 1, {"type": "signature_delta",
                                                  "signature": event.signature})
        return out

    def _finish(self, event: Finished) -> bytes:
        self._finished = True
        usage = anthropic_usage(event.usage or self._usage)
        delta = {"stop_reason": STOP_REASONS.get(event.stop, "end_turn"),
                 "stop_sequence": event.stop_sequence}
        return (self._close() + _frame("message_delta", {"delta": delta, "usage": usage})
                + _frame("message_stop", {}))

    def end(self) -> bytes:
        """
        Nothing, after a L{Finished}; a stream that ended without one is
        finished as an ordinary end of turn, so the client's stream is whole.
        """
        return b"" if self._finished else self.encode(Finished(END))

    def fail(self, error: APIError) -> bytes:
        """
        The C{error} event Anthropic sends when a stream breaks after its 200.
        """
        self._finished = True
        return b"event: error\ndata: " + error_body(error) + b"\n\n"
