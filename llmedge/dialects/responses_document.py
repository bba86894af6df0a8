# -*- test-case-name: tests.unit.test_dialect_responses -*-
"""
The pieces of a Responses answer: the C{response} object, its output
items and its usage, written one way for the whole answer and for the
stream's events.

A stream tells each output item twice (added, then done) and the whole
response up to three times (created, in progress, completed), and the
openai SDK checks that they agree: an item done must have the id it was
added with, and the completed response must hold every item done. So
item ids are not drawn but derived, from the response's id and the
item's place in the output, and the same functions write every copy.
"""

from __future__ import annotations

from typing import Any

from llmedge.dialects.conversation import (
    AUTO,
    Conversation,
    Reasoning,
    Text,
    ToolCall,
)
from llmedge.dialects.reply import CONTENT_FILTER, LENGTH, Usage

__all__ = [
    "COMPLETED", "FAILED", "INCOMPLETE", "IN_PROGRESS", "function_call_item", "item_id",
    "items_of", "message_item", "output_text", "reasoning_item", "response_id",
    "response_object", "status_of", "usage_object",
]

PREFIX = "resp_"
#: The most characters of a provider's id kept in a response's id.
ID_LENGTH = 64

IN_PROGRESS, COMPLETED, INCOMPLETE, FAILED = "in_progress", "completed", "incomplete", "failed"

#: Stop reasons that leave a response incomplete, and OpenAI's reason.
_INCOMPLETE = {LENGTH: "max_output_tokens", CONTENT_FILTER: "content_filter"}


def response_id(reply_id: str, created: int) -> str:
    """
    The response's id: C{resp_} and the provider's id, letters and digits
    only, since item ids are made from it. A provider that gave no id
    gets one from the time, as a response must have one.
    """
    core = reply_id.removeprefix(PREFIX)
    core = "".join(c for c in core if c.isascii() and c.isalnum())[:ID_LENGTH]
    return PREFIX + (core or str(created))


def item_id(response: str, kind: str, index: int) -> str:
    """
    The id of the output item at C{index}: C{msg}, C{fc} or C{rs}, then
    the response's id without its prefix, then the index.
    """
    return f"{kind}_{response.removeprefix(PREFIX)}_{index}"


def status_of(stop: str) -> str:
    return INCOMPLETE if stop in _INCOMPLETE else COMPLETED


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(id: str, text: str | None, status: str = COMPLETED) -> dict[str, Any]:
    """
    An assistant message; C{text} L{None} is one just added, with no
    content part yet.
    """
    content = [] if text is None else [output_text(text)]
    return {"type": "message", "id": id, "status": status, "role": "assistant",
            "content": content}


def reasoning_item(id: str, text: str) -> dict[str, Any]:
    """
    Reasoning as a reasoning item's summary: what Responses clients show
    of a model's reasoning. Nothing is encrypted: no other provider could
    read it back.
    """
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"type": "reasoning", "id": id, "summary": summary}


def function_call_item(id: str, call: ToolCall, status: str = COMPLETED) -> dict[str, Any]:
    return {"type": "function_call", "id": id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments, "status": status}


def items_of(parts: list[Text | Reasoning | ToolCall], response: str) -> list[dict[str, Any]]:
    """
    A reply's parts as output items, in order: a run of text is one
    message, a run of reasoning one reasoning item (as a stream of them
    is), each tool call a function call.
    """
    items: list[dict[str, Any]] = []
    runs: list[list] = []
    for part in parts:
        if runs and not isinstance(part, ToolCall) and type(runs[-1][0]) is type(part):
            runs[-1].append(part)
        else:
            runs.append([part])
    for index, run in enumerate(runs):
        first = run[0]
        if isinstance(first, Text):
            text = "".join(p.text for p in run)
            items.append(message_item(item_id(response, "msg", index), text))
        elif isinstance(first, Reasoning):
            text = "".join(p.text for p in run)
            items.append(reasoning_item(item_id(response, "rs", index), text))
        else:
            items.append(function_call_item(item_id(response, "fc", index), first))
    return items


def usage_object(usage: Usage) -> dict[str, Any]:
    """
    Responses' usage. Cache writes are counted in the input tokens, as
    llmedge counts them, not apart; reasoning tokens are not told apart
    from the output by every provider, so none are.
    """
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                 "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _tool_choice(conversation: Conversation) -> str | dict[str, str]:
    choice = conversation.tool_choice
    if choice is None:
        return AUTO
    if choice.name is not None:
        return {"type": "function", "name": choice.name}
    return choice.mode


def _text(conversation: Conversation) -> dict[str, Any]:
    form = conversation.response_format
    if form is None:
        return {"format": {"type": "text"}}
    if form.kind != "json_schema":
        return {"format": {"type": form.kind}}
    return {"format": {"type": "json_schema", "name": form.name, "schema": form.schema,
                       "strict": form.strict}}


def response_object(
    conversation: Conversation,
    created: int,
    id: str,
    output: list[dict[str, Any]],
    status: str,
    stop: str | None = None,
    usage: Usage | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The C{response} object: what the request asked (echoed as Responses
    says it) and what came of it so far.
    """
    reason = _INCOMPLETE.get(stop) if status == INCOMPLETE else None
    choice = conversation.tool_choice
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": None if reason is None else {"reason": reason},
        "instructions": "\n\n".join(conversation.system) or None,
        "max_output_tokens": conversation.max_tokens,
        "model": conversation.model,
        "output": output,
        "parallel_tool_calls": choice is None or choice.parallel is not False,
        "previous_response_id": None,
        "store": False,
        "temperature": conversation.temperature,
        "text": _text(conversation),
        "tool_choice": _tool_choice(conversation),
        "tools": [
            {"type": "function", "name": tool.name, "description": tool.description,
             "parameters": tool.parameters, "strict": tool.strict}
            for tool in conversation.tools
        ],
        "top_p": conversation.top_p,
        "truncation": "disabled",
        "usage": None if usage is None else usage_object(usage),
        "metadata": dict(conversation.metadata),
    }
