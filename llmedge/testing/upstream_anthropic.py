# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
Anthropic's Messages API (C{POST /v1/messages}) as the fake upstream
speaks it, so a proxy's translation can be tested both ways against the
real wire format rather than against its own idea of it.

Streams are named events (C{event: TYPE} then C{data: JSON}) in Anthropic's
order: message_start, content_block_start, ping, content_block_delta...,
content_block_stop, message_delta, message_stop; no C{[DONE]}.

A request that offers C{tools} and whose last user message says
"use tool" is answered with a C{tool_use} block calling the first tool with
C{{"x": 1}}; streamed, its input arrives as two C{input_json_delta} pieces,
as Anthropic splits JSON anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmedge.testing.upstream_options import PROMPT_TOKENS

if TYPE_CHECKING:
    from llmedge.testing.upstream_options import Ask

#: Status -> Anthropic's error type.
_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

TOOL_ID = "toolu_fake_1"
TOOL_INPUT = {"x": 1}
#: The tool input's JSON, split where a real stream might split it.
TOOL_INPUT_PIECES = ('{"x":', "1}")


def named_event(type: str, document: dict[str, Any]) -> bytes:
    data = json.dumps({"type": type, **document}, separators=(",", ":")).encode()
    return b"event: " + type.encode() + b"\ndata: " + data + b"\n\n"


def error(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """
    Anthropic's error document for C{status} (it has no C{param}).
    """
    default = "api_error" if status >= 500 else "invalid_request_error"
    return {"type": "error", "error": {"type": _ERRORS.get(status, default), "message": message}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            block.get("text", "") for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def tool_called(body: dict[str, Any]) -> dict[str, Any] | None:
    """
    The tool the answer calls: the first one offered, when the last user
    message asks to "use tool"; L{None} for a text answer.
    """
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    users = [
        message for message in body.get("messages", [])
        if isinstance(message, dict) and message.get("role") == "user"
    ]
    if not users or "use tool" not in _text_of(users[-1].get("content")):
        return None
    return tools[0]


class MessagesWire:
    """
    C{POST /v1/messages}.
    """

    streams = True
    trailer = b""

    def error(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        return error(status, message, param)

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens", "max_tokens: Field required"
        if not isinstance(body.get("messages"), list):
            return "messages", "messages: Field required"
        return None

    def garbage_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": this is not JSON\n\n'

    def _message(self, ask: Ask, content: list[Any], stop: str | None, output: int):
        return {
            "id": f"msg_fake_{ask.n}",
            "type": "message",
            "role": "assistant",
            "model": ask.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": output},
        }

    def answer(self, ask: Ask) -> dict[str, Any]:
        tool = tool_called(ask.body)
        if tool is not None:
            block = {"type": "tool_use", "id": TOOL_ID, "name": tool.get("name"),
                     "input": TOOL_INPUT}
            return self._message(ask, [block], "tool_use", ask.behaviour.chunks)
        block = {"type": "text", "text": ask.behaviour.text()}
        return self._message(ask, [block], "end_turn", ask.behaviour.chunks)

    def events(self, ask: Ask) -> Iterator[bytes]:
        tool = tool_called(ask.body)
        yield named_event("message_start", {"message": self._message(ask, [], None, 1)})
        if tool is not None:
            block = {"type": "tool_use", "id": TOOL_ID, "name": tool.get("name"), "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in TOOL_INPUT_PIECES]
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            deltas = (
                {"type": "text_delta", "text": ask.behaviour.piece(i)}
                for i in range(ask.behaviour.chunks)
            )
            stop = "end_turn"
        yield named_event("content_block_start", {"index": 0, "content_block": block})
        yield named_event("ping", {})
        for delta in deltas:
            yield named_event("content_block_delta", {"index": 0, "delta": delta})
        yield named_event("content_block_stop", {"index": 0})
        yield named_event("message_delta", {
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": ask.behaviour.chunks},
        })
        yield named_event("message_stop", {})
