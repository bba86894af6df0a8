# -*- test-case-name: tests.unit.test_fake_upstream_dialects -*-
"""
OpenAI's chat completions (C{POST /v1/chat/completions}) as the fake
upstream speaks it: the dialect most proxies are built around, so the one
whose details they most easily take for granted.

A document is a C{chat.completion} with one choice; a stream is
C{data: JSON} chunks (C{chat.completion.chunk}), the first carrying the
role, one per piece of the answer, one with the C{finish_reason}, then
C{data: [DONE]}. With C{stream_options.include_usage} every chunk has
C{"usage": null} and one last chunk has C{"choices": []} and the usage.

Two answers beyond text, asked for by the last user message
(L{llmedge.testing.upstream_intent}):

  - "use tool", with C{tools} offered: the message has C{"content": null}
    and one C{tool_calls} entry (id L{CALL_ID}, the first tool, arguments
    C{{"x":1}}), C{finish_reason} C{"tool_calls"}. Streamed as OpenAI does:
    the call's id, type and name with empty arguments in the role chunk,
    then the arguments in two deltas carrying only C{index} and the piece.
  - "think": C{reasoning_content} L{THOUGHT} beside the content, as
    vLLM and DeepSeek send a reasoning model's trace (OpenAI itself does
    not); streamed as its own delta before the answer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmedge.testing.upstream_intent import (
    CALL_ID, THOUGHT, TOOL_ARGUMENTS, TOOL_INPUT_PIECES, last_user_text, thinks, tool_to_call,
)
from llmedge.testing.upstream_openai import FINGERPRINT, OpenAIWire, event, include_usage, usage

if TYPE_CHECKING:
    from llmedge.testing.upstream_options import Ask


def tool_names(body: dict[str, Any]) -> list[str]:
    """
    The names of the function tools a chat request offers, in order.
    """
    tools = body.get("tools")
    names = []
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _intent(body: dict[str, Any]) -> tuple[str | None, bool]:
    """
    The tool the answer calls (or L{None}) and whether it thinks first.
    """
    text = last_user_text(body.get("messages"))
    return tool_to_call(tool_names(body), body.get("tool_choice"), text), thinks(text)


class ChatWire(OpenAIWire):
    """
    C{POST /v1/chat/completions}.
    """

    streams = True

    def answer(self, ask: Ask) -> dict[str, Any]:
        tool, think = _intent(ask.body)
        message: dict[str, Any] = {"role": "assistant", "content": ask.behaviour.text()}
        if think:
            message["reasoning_content"] = THOUGHT
        if tool is not None:
            message["content"] = None
            message["tool_calls"] = [{
                "id": CALL_ID, "type": "function",
                "function": {"name": tool, "arguments": TOOL_ARGUMENTS},
            }]
        message["refusal"] = None
        return {
            "id": f"chatcmpl-fake-{ask.n}",
            "object": "chat.completion",
            "created": ask.created,
            "model": ask.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "stop" if tool is None else "tool_calls",
            }],
            "usage": usage(ask.behaviour.chunks),
        }

    def _deltas(self, ask: Ask) -> Iterator[dict[str, Any]]:
        """
        The deltas of the answer's chunks, before the one that finishes it.
        """
        tool, think = _intent(ask.body)
        first: dict[str, Any] = {"role": "assistant", "content": ""}
        header = {"tool_calls": [{"index": 0, "id": CALL_ID, "type": "function",
                                  "function": {"name": tool, "arguments": ""}}]}
        if tool is not None and not think:
            first = {"role": "assistant", "content": None, **header}
        yield first
        if think:
            yield {"reasoning_content": THOUGHT}
            if tool is not None:
                yield header
        if tool is not None:
            for piece in TOOL_INPUT_PIECES:
                yield {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            return
        for index in range(ask.behaviour.chunks):
            yield {"content": ask.behaviour.piece(index)}

    def events(self, ask: Ask) -> Iterator[bytes]:
        with_usage = include_usage(ask.body)
        finish = "stop" if _intent(ask.body)[0] is None else "tool_calls"

        def chunk(delta: dict[str, Any], finish: str | None = None, choices: bool = True):
            document: dict[str, Any] = {
                "id": f"chatcmpl-fake-{ask.n}",
                "object": "chat.completion.chunk",
                "created": ask.created,
                "model": ask.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ] if choices else [],
            }
            if with_usage:
                document["usage"] = None
            return document

        for delta in self._deltas(ask):
            yield event(chunk(delta))
        yield event(chunk({}, finish))
        if with_usage:
            last = chunk({}, choices=False)
            last["usage"] = usage(ask.behaviour.chunks)
            yield event(last)
