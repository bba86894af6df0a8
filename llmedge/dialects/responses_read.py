# -*- test-case-name: tests.unit.test_dialect_responses_read -*-
"""
A Responses API C{response} object read back as a L{Reply}: the inverse
of L{llmedge.dialects.responses_reply.encode_reply}.

A Responses stream passed through from an OpenAI upstream ends with the
whole answer (C{response.completed}); the response cache keeps that answer
as a reply, so that a later request for the same body can be told it again
as a stream by the same encoder as a live one. So this reads everything
a reply holds, and only that: message text, reasoning summaries, function
calls, why the model stopped, the usage, the id and the time.

What an upstream sends is read defensively, as the other decoders do: a
field of the wrong type reads as absent, and items a reply has no place
for (web searches, files, images) are left out.
"""

from __future__ import annotations

from typing import Any

from llmedge.dialects.conversation import Reasoning, Text, ToolCall
from llmedge.dialects.reply import CONTENT_FILTER, END, LENGTH, TOOL_CALLS, Reply, Usage
from llmedge.dialects.responses_document import INCOMPLETE, PREFIX

__all__ = ["decode_reply"]

#: What an incomplete response's reason says about why the model stopped.
_STOPS = {"max_output_tokens": LENGTH, "content_filter": CONTENT_FILTER}


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def _message(item: dict) -> list[Text]:
    """
    A message's text: its output text parts (and refusals, the only text
    a refusing model gives) as one L{Text}, as they were written; a message
    with no text part gives none.
    """
    texts = []
    for part in _list(item.get("content")):
        kind = _object(part).get("type")
        if kind == "output_text":
            texts.append(_string(part.get("text")))
        elif kind == "refusal":
            texts.append(_string(part.get("refusal")))
    return [Text("".join(texts))] if texts else []


def _reasoning(item: dict) -> Reasoning:
    """
    A reasoning item's summary, its parts a paragraph each (as the
    Responses input codec reads them). Its C{encrypted_content} is not
    kept: llmedge never writes one, and no other provider could read it.
    """
    texts = [_string(s.get("text")) for s in _list(item.get("summary"))
             if _object(s).get("type") == "summary_text"]
    return Reasoning("\n\n".join(t for t in texts if t))


def _parts(output: list) -> list[Text | Reasoning | ToolCall]:
    parts: list[Text | Reasoning | ToolCall] = []
    for item in output:
        kind = _object(item).get("type")
        if kind == "message":
            parts += _message(item)
        elif kind == "reasoning":
            parts.append(_reasoning(item))
        elif kind == "function_call":
            parts.append(ToolCall(_string(item.get("call_id")), _string(item.get("name")),
                                  _string(item.get("arguments"))))
    return parts


def _stop(response: dict, called: bool) -> str:
    """
    Why the model stopped: an incomplete response says why it was cut;
    a complete one with function calls stopped to have them called.
    """
    if response.get("status") == INCOMPLETE:
        reason = _object(response.get("incomplete_details")).get("reason")
        if isinstance(reason, str) and reason in _STOPS:
            return _STOPS[reason]
    return TOOL_CALLS if called else END


def _usage(usage: dict) -> Usage:
    details = _object(usage.get("input_tokens_details"))
    return Usage(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")),
                 _count(details.get("cached_tokens")))


def decode_reply(response: Any) -> Reply:
    """
    The reply a C{response} object holds. Its id loses the C{resp_}
    prefix L{llmedge.dialects.responses_document.response_id} adds, so
    encoding the reply again gives the same id.

    @raise ValueError: C{response} is not a response object.
    """
    if not isinstance(response, dict) or response.get("object", "response") != "response":
        raise ValueError("not a response object")
    output = response.get("output")
    if not isinstance(output, list):
        raise ValueError("a response object without output")
    parts = _parts(output)
    return Reply(
        id=_string(response.get("id")).removeprefix(PREFIX),
        parts=parts,
        stop=_stop(response, any(isinstance(p, ToolCall) for p in parts)),
        usage=_usage(_object(response.get("usage"))),
        created=_count(response.get("created_at")),
    )
