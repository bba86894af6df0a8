# -*- test-case-name: tests.unit.test_fake_upstream_dialects -*-
"""
OpenAI's Responses API (C{POST /v1/responses}) as a server that serves it
natively speaks it, so a proxy with a Responses front end can be tested
both passing it through and translating it to chat or Messages.

The answer tells the two apart: it is C{"Responses API: "} followed by
what every other endpoint answers (C{chunk0 chunk1 ...}), so a client
that reads the prefix knows the native endpoint answered. Usage is the
fake's as elsewhere: 7 input tokens, one output token per chunk (the
prefix is free), with the C{input_tokens_details} and
C{output_tokens_details} OpenAI always sends.

A document is a C{response} object (C{id} C{resp_fake_N}, C{object}
C{"response"}, C{status} C{"completed"}, C{model} as asked) whose
C{output} holds one C{message} item with one C{output_text} part. A
stream is typed events, C{event: TYPE} then C{data: JSON} whose C{type}
repeats it and whose C{sequence_number} counts from 0, in OpenAI's order:
response.created, response.in_progress, response.output_item.added,
response.content_part.added, one response.output_text.delta a piece (the
prefix is the first), response.output_text.done, response.content_part.done,
response.output_item.done, response.completed; no C{[DONE]}.

A request offering function C{tools} whose last user input says
"use tool" (L{llmedge.testing.upstream_intent}, C{tool_choice} honoured)
is answered with a C{function_call} item instead (C{call_id}
L{CALL_ID}, arguments C{{"x":1}}), streamed as output_item.added, two
function_call_arguments.delta, function_call_arguments.done and
output_item.done. Errors are OpenAI's (L{OpenAIWire}).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import TYPE_CHECKING, Any

from llmedge.testing.upstream_anthropic import named_event
from llmedge.testing.upstream_intent import (
    CALL_ID, TOOL_ARGUMENTS, TOOL_INPUT_PIECES, last_user_text, tool_to_call,
)
from llmedge.testing.upstream_openai import OpenAIWire
from llmedge.testing.upstream_options import PROMPT_TOKENS

if TYPE_CHECKING:
    from llmedge.testing.upstream_options import Ask

#: How every answer of the native endpoint starts.
PREFIX = "Responses API: "


def tool_called(body: dict[str, Any]) -> str | None:
    """
    The name of the function tool the answer calls, L{None} for text.
    Responses tools are flat (C{{"type": "function", "name": ...}}), and
    built-in tools (web search and the like) are never called.
    """
    tools = body.get("tools")
    names = [
        tool["name"] for tool in (tools if isinstance(tools, list) else [])
        if isinstance(tool, dict) and tool.get("type") == "function"
        and isinstance(tool.get("name"), str)
    ]
    return tool_to_call(names, body.get("tool_choice"), last_user_text(body.get("input")))


def usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + output_tokens,
    }


def _echo(body: dict[str, Any], field: str, kind: type, default: Any = None) -> Any:
    value = body.get(field)
    return value if isinstance(value, kind) else default


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponsesWire(OpenAIWire):
    """
    C{POST /v1/responses}.
    """

    streams = True
    trailer = b""

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if "input" in body and not isinstance(body["input"], (str, list)):
            return "input", ("Invalid type for 'input': expected one of a string or "
                             "array of input items.")
        return None

    def garbage_event(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type": this is not JSON\n\n'

    def _response(self, ask: Ask, status: str, output: list[Any],
                  used: dict[str, Any] | None) -> dict[str, Any]:
        body = ask.body
        done = status == "completed"
        return {
            "id": f"resp_fake_{ask.n}",
            "object": "response",
            "created_at": ask.created,
            "status": status,
            "background": False,
            "completed_at": ask.created if done else None,
            "error": None,
            "incomplete_details": None,
            "instructions": _echo(body, "instructions", str),
            "max_output_tokens": _echo(body, "max_output_tokens", int),
            "metadata": _echo(body, "metadata", dict, {}),
            "model": ask.model,
            "output": output,
            "parallel_tool_calls": _echo(body, "parallel_tool_calls", bool, True),
            "previous_response_id": _echo(body, "previous_response_id", str),
            "reasoning": {"effort": None, "summary": None},
            "store": _echo(body, "store", bool, True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": _echo(body, "tools", list, []),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": used,
            "user": None,
        }

    def _item(self, ask: Ask, done: bool) -> dict[str, Any]:
        """
        The answer's output item, completed or as it starts in a stream.
        """
        status = "completed" if done else "in_progress"
        tool = tool_called(ask.body)
        if tool is not None:
            return {"id": f"fc_fake_{ask.n}", "type": "function_call", "status": status,
                    "arguments": TOOL_ARGUMENTS if done else "", "call_id": CALL_ID,
                    "name": tool}
        content = [_text_part(self.text(ask))] if done else []
        return {"id": f"msg_fake_{ask.n}", "type": "message", "status": status,
                "role": "assistant", "content": content}

    def text(self, ask: Ask) -> str:
        return PREFIX + ask.behaviour.text()

    def answer(self, ask: Ask) -> dict[str, Any]:
        return self._response(ask, "completed", [self._item(ask, True)],
                              usage(ask.behaviour.chunks))

    def events(self, ask: Ask) -> Iterator[bytes]:
        numbers = count()

        def typed(type: str, **fields: Any) -> bytes:
            return named_event(type, {**fields, "sequence_number": next(numbers)})

        started = self._response(ask, "in_progress", [], None)
        yield typed("response.created", response=started)
        yield typed("response.in_progress", response=started)
        item = self._item(ask, False)
        at = {"item_id": item["id"], "output_index": 0}
        yield typed("response.output_item.added", output_index=0, item=item)
        if item["type"] == "function_call":
            for piece in TOOL_INPUT_PIECES:
                yield typed("response.function_call_arguments.delta", **at, delta=piece)
            yield typed("response.function_call_arguments.done", **at, arguments=TOOL_ARGUMENTS)
        else:
            part = {**at, "content_index": 0}
            yield typed("response.content_part.added", **part, part=_text_part(""))
            for piece in self._pieces(ask):
                yield typed("response.output_text.delta", **part, delta=piece, logprobs=[])
            text = self.text(ask)
            yield typed("response.output_text.done", **part, text=text, logprobs=[])
            yield typed("response.content_part.done", **part, part=_text_part(text))
        yield typed("response.output_item.done", output_index=0, item=self._item(ask, True))
        yield typed("response.completed", response=self.answer(ask))

    def _pieces(self, ask: Ask) -> Iterator[str]:
        """
        The text's deltas: the prefix, then the answer's pieces, each built
        as it is sent.
        """
        yield PREFIX
        for index in range(ask.behaviour.chunks):
            yield ask.behaviour.piece(index)
