# -*- test-case-name: tests.unit.test_fake_upstream,tests.unit.test_fake_upstream_dialects -*-
"""
Anthropic's Messages API (C{POST /v1/messages}, and its
C{/v1/messages/count_tokens}) as the fake upstream speaks it, so a proxy's
translation can be tested both ways against the real wire format rather
than against its own idea of it.

Streams are named events (C{event: TYPE} then C{data: JSON}) in Anthropic's
order: message_start, then for each content block content_block_start
(a ping after the first), content_block_delta..., content_block_stop, then
message_delta, message_stop; no C{[DONE]}.

What the last user message asks for (L{llmedge.testing.upstream_intent}):

  - "use tool", with C{tools} offered: a C{tool_use} block calling the
    first tool with C{{"x": 1}} (C{tool_choice} honoured: C{none},
    C{any}, C{{"type": "tool", "name"}}), C{stop_reason} C{"tool_use"};
    streamed, its input arrives as two C{input_json_delta} pieces, as
    Anthropic splits JSON anywhere.
  - "think", when the request enables extended thinking
    (C{"thinking": {"type": "enabled", ...}}): a C{thinking} block
    (L{THOUGHT}, signature L{SIGNATURE}) before the answer, streamed as a
    C{thinking_delta} and a C{signature_delta}. Without the switch
    Anthropic never thinks, and neither does the fake.

C{stop_sequences} are honoured on text answers: the text ends before the
first one found in it, C{stop_reason} is C{"stop_sequence"} and
C{stop_sequence} names it, so a proxy's mapping of C{stop} to
C{stop_sequences} and back can be checked end to end.

C{count_tokens} answers C{{"input_tokens": 7}} (L{PROMPT_TOKENS}),
whatever the messages: what the same request's C{usage.input_tokens}
would say, as Anthropic promises, and a number a proxy's own estimate is
unlikely to produce for a test's few words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmedge.testing.upstream_intent import (
    SIGNATURE, THOUGHT, TOOL_INPUT, TOOL_INPUT_PIECES, last_user_text, thinks, tool_to_call,
)
from llmedge.testing.upstream_options import PROMPT_TOKENS

if TYPE_CHECKING:
    from llmedge.testing.upstream_options import Ask, Behaviour

__all__ = ["TOOL_ID", "TOOL_INPUT", "TOOL_INPUT_PIECES", "CountTokensWire", "MessagesWire",
           "error", "named_event"]

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


def named_event(type: str, document: dict[str, Any]) -> bytes:
    """
    One server-sent event named C{type}, its data C{document} with the
    C{type} field first, as Anthropic and OpenAI's Responses API send.
    """
    data = json.dumps({"type": type, **document}, separators=(",", ":")).encode()
    return b"event: " + type.encode() + b"\ndata: " + data + b"\n\n"


def error(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """
    Anthropic's error document for C{status} (it has no C{param}).
    """
    default = "api_error" if status >= 500 else "invalid_request_error"
    return {"type": "error", "error": {"type": _ERRORS.get(status, default), "message": message}}


def tool_called(body: dict[str, Any]) -> str | None:
    """
    The name of the tool the answer calls, L{None} for a text answer.
    """
    tools = body.get("tools")
    names = [
        tool["name"] for tool in (tools if isinstance(tools, list) else [])
        if isinstance(tool, dict) and isinstance(tool.get("name"), str)
    ]
    return tool_to_call(names, body.get("tool_choice"), last_user_text(body.get("messages")))


def thinking(body: dict[str, Any]) -> bool:
    """
    Whether the answer starts with a thinking block: thinking enabled and
    asked for.
    """
    config = body.get("thinking")
    enabled = isinstance(config, dict) and config.get("type") == "enabled"
    return enabled and thinks(last_user_text(body.get("messages")))


def stop_at(body: dict[str, Any], behaviour: Behaviour) -> tuple[int | None, str | None]:
    """
    Where the answer's text stops and for which of C{stop_sequences}: the
    earliest match, the first listed on a tie; C{(None, None)} for none.
    """
    stops = body.get("stop_sequences")
    if not isinstance(stops, list) or not stops:
        return None, None
    text = behaviour.text()
    best: tuple[int | None, str | None] = (None, None)
    for stop in stops:
        at = text.find(stop) if isinstance(stop, str) and stop else -1
        if at >= 0 and (best[0] is None or at < best[0]):
            best = (at, stop)
    return best


def text_pieces(behaviour: Behaviour, cut: int | None) -> Iterator[str]:
    """
    The answer's pieces, the one reaching C{cut} shortened, none after it;
    built one at a time, so a paused stream builds no backlog.
    """
    position = 0
    for index in range(behaviour.chunks):
        piece = behaviour.piece(index)
        if cut is not None and position + len(piece) > cut:
            if cut > position:
                yield piece[:cut - position]
            return
        yield piece
        position += len(piece)


class _AnthropicWire:
    """
    What Anthropic's endpoints share: the error shape, a stream's end.
    """

    streams = False
    trailer = b""

    def error(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        return error(status, message, param)

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if not isinstance(body.get("messages"), list):
            return "messages", "messages: Field required"
        return None

    def garbage_event(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": this is not JSON\n\n'


class CountTokensWire(_AnthropicWire):
    """
    C{POST /v1/messages/count_tokens}: the input tokens of a Messages
    request, which needs no C{max_tokens} and never streams.
    """

    def answer(self, ask: Ask) -> dict[str, Any]:
        return {"input_tokens": PROMPT_TOKENS}


class MessagesWire(_AnthropicWire):
    """
    C{POST /v1/messages}.
    """

    streams = True

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens", "max_tokens: Field required"
        return super().problem(body)

    def _message(self, ask: Ask, content: list[Any], stop: str | None, sequence: str | None,
                 output: int) -> dict[str, Any]:
        return {
            "id": f"msg_fake_{ask.n}",
            "type": "message",
            "role": "assistant",
            "model": ask.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": sequence,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": output},
        }

    def _ending(self, ask: Ask) -> tuple[str, str | None, int]:
        """
        The answer's C{stop_reason}, C{stop_sequence} and output tokens
        (one per piece of text sent), without building the text unless a
        stop sequence may cut it.
        """
        if tool_called(ask.body) is not None:
            return "tool_use", None, ask.behaviour.chunks
        cut, sequence = stop_at(ask.body, ask.behaviour)
        if sequence is None:
            return "end_turn", None, ask.behaviour.chunks
        return "stop_sequence", sequence, sum(1 for _ in text_pieces(ask.behaviour, cut))

    def answer(self, ask: Ask) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if thinking(ask.body):
            content.append({"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE})
        tool = tool_called(ask.body)
        if tool is not None:
            content.append({"type": "tool_use", "id": TOOL_ID, "name": tool, "input": TOOL_INPUT})
        else:
            cut, _ = stop_at(ask.body, ask.behaviour)
            content.append({"type": "text", "text": "".join(text_pieces(ask.behaviour, cut))})
        return self._message(ask, content, *self._ending(ask))

    def _blocks(self, ask: Ask) -> Iterator[tuple[dict[str, Any], Iterator[dict[str, Any]]]]:
        """
        Each content block as it starts, with the deltas that fill it.
        """
        if thinking(ask.body):
            yield {"type": "thinking", "thinking": "", "signature": ""}, iter([
                {"type": "thinking_delta", "thinking": THOUGHT},
                {"type": "signature_delta", "signature": SIGNATURE},
            ])
        tool = tool_called(ask.body)
        if tool is not None:
            yield {"type": "tool_use", "id": TOOL_ID, "name": tool, "input": {}}, (
                {"type": "input_json_delta", "partial_json": p} for p in TOOL_INPUT_PIECES)
            return
        cut, _ = stop_at(ask.body, ask.behaviour)
        yield {"type": "text", "text": ""}, (
            {"type": "text_delta", "text": piece} for piece in text_pieces(ask.behaviour, cut))

    def events(self, ask: Ask) -> Iterator[bytes]:
        yield named_event("message_start", {"message": self._message(ask, [], None, None, 1)})
        for index, (block, deltas) in enumerate(self._blocks(ask)):
            yield named_event("content_block_start", {"index": index, "content_block": block})
            if index == 0:
                yield named_event("ping", {})
            for delta in deltas:
                yield named_event("content_block_delta", {"index": index, "delta": delta})
            yield named_event("content_block_stop", {"index": index})
        stop, sequence, output = self._ending(ask)
        yield named_event("message_delta", {
            "delta": {"stop_reason": stop, "stop_sequence": sequence},
            "usage": {"output_tokens": output},
        })
        yield named_event("message_stop", {})
