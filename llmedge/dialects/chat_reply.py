# -*- test-case-name: tests.unit.test_dialect_chat -*-
"""
Chat Completions answers as replies and events, and back: the answer half
of the chat codec.

Encoding writes what OpenAI writes, so any SDK reads it: a
C{chat.completion}, or C{chat.completion.chunk}s in server-sent events
ending with C{[DONE]}, tool calls numbered among tool calls alone, and
the usage on a last chunk without choices when the client asked for it.
Reasoning, which OpenAI does not return, goes where DeepSeek and vLLM put
it (C{reasoning_content}); SDKs keep fields they do not know.

Decoding reads what OpenAI-compatible servers write, and they differ:
vLLM, Ollama and LiteLLM may leave out the role chunk, send empty deltas
and null content, name reasoning C{reasoning} or C{reasoning_content},
put the usage on a content chunk or on a choice with an empty delta, and
report a tool call with C{finish_reason} "stop". So a stream's end is
known only when it ends: the caller asks L{StreamDecoder.finish} then.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.dialects.conversation import Conversation, Reasoning, Text, ToolCall
from llmedge.dialects.reply import (
    CONTENT_FILTER, END, LENGTH, PAUSE, STOP_SEQUENCE, TOOL_CALLS, Event, Finished,
    ReasoningDelta, Reply, Started, TextDelta, ToolArgumentsDelta, ToolCallStarted, Usage,
)
from llmedge.errors import APIError

__all__ = ["StreamDecoder", "StreamEncoder", "decode_reply", "encode_reply"]

_FINISH_REASON = {
    END: "stop", STOP_SEQUENCE: "stop", LENGTH: "length", TOOL_CALLS: "tool_calls",
    CONTENT_FILTER: "content_filter", PAUSE: "stop",
}
_STOP = {
    "stop": END, "length": LENGTH, "tool_calls": TOOL_CALLS, "function_call": TOOL_CALLS,
    "content_filter": CONTENT_FILTER,
}
_PREFIX = "chatcmpl-"


def _stop(finish_reason: Any, called: bool) -> str:
    """
    The stop reason for a C{finish_reason}. A model that called tools
    stopped to have them called, whatever the server says (Ollama and
    some vLLM parsers say "stop"): a Messages client runs tools only on
    C{tool_use}.
    """
    stop = _STOP.get(finish_reason, END) if isinstance(finish_reason, str) else END
    return TOOL_CALLS if called and stop == END else stop


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage_of(usage: Any) -> Usage:
    """
    The usage an OpenAI usage object says; counts that are not integers
    read as 0.
    """
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
                 _int(cached))


def _openai_usage(usage: Usage) -> dict[str, Any]:
    openai: dict[str, Any] = usage.openai()
    if usage.cached_tokens > 0:
        openai["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return openai


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _reasoning(fields: dict) -> str:
    """
    The reasoning text of a message or delta, by either of its names.
    """
    return _text(fields.get("reasoning_content")) or _text(fields.get("reasoning"))


def decode_reply(document: dict) -> Reply:
    """
    The reply a C{chat.completion} holds: its first choice, reasoning
    first, then the text (or the refusal, the only text a refusing model
    gives), then the tool calls.

    @raise ValueError: C{document} is not a chat completion.
    """
    if not isinstance(document, dict) or document.get("object") not in (
        None, "chat.completion"
    ):
        raise ValueError("not a chat.completion")
    choices = document.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("a chat.completion without choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ValueError("a choice without a message")
    parts: list[Text | Reasoning | ToolCall] = []
    if reasoning := _reasoning(message):
        parts.append(Reasoning(reasoning))
    if text := _text(message.get("content")) or _text(message.get("refusal")):
        parts.append(Text(text))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            n = sum(isinstance(p, ToolCall) for p in parts)
            parts.append(ToolCall(_text(call.get("id")) or f"call_{n}",
                                  _text(function.get("name")), _text(function.get("arguments"))))
    called = any(isinstance(p, ToolCall) for p in parts)
    return Reply(
        id=_text(document.get("id")),
        parts=parts,
        stop=_stop(choices[0].get("finish_reason"), called),
        usage=_usage_of(document.get("usage")),
        created=_int(document.get("created")),
    )


def _id(reply_id: str) -> str:
    return reply_id if reply_id.startswith(_PREFIX) else _PREFIX + reply_id


def encode_reply(reply: Reply, conversation: Conversation, created: int) -> dict:
    """
    The C{chat.completion} for C{reply}, naming the model the client asked
    for.
    """
    texts = [p.text for p in reply.parts if isinstance(p, Text)]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    reasoning = [p.text for p in reply.parts if isinstance(p, Reasoning)]
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return {
        "id": _id(reply.id),
        "object": "chat.completion",
        "created": created,
        "model": conversation.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": _FINISH_REASON.get(reply.stop, "stop"),
        }],
        "usage": _openai_usage(reply.usage),
    }


def _frame(chunk: dict) -> bytes:
    try:
        data = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, escaped in a peer's JSON
        data = json.dumps(chunk, separators=(",", ":")).encode("ascii")
    return b"data: " + data + b"\n\n"


class StreamEncoder:
    """
    A stream of events as chat chunks. The role chunk comes first whatever
    the first event, a tool call's arguments go only after its start, and
    nothing comes after the finish.
    """

    def __init__(self, conversation: Conversation, created: int) -> None:
        self._model = conversation.model
        self._created = created
        self._include_usage = conversation.include_usage
        self._id = _PREFIX
        self._started = self._finished = False
        self._usage: Usage | None = None
        self._calls: dict[int, int] = {}  # the events' index -> OpenAI's

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return _frame(chunk)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def encode(self, event: Event) -> bytes:
        """
        The chunks for one event; empty deltas, and arguments of a call
        that never started, send nothing.
        """
        if self._finished:
            return b""
        if isinstance(event, Started):
            if not self._started:
                self._id = _id(event.id)
            self._usage = event.usage or self._usage
            return self._start()
        opening = self._start()
        if isinstance(event, TextDelta) and event.text:
            return opening + self._chunk({"content": event.text})
        if isinstance(event, ReasoningDelta) and event.text:
            return opening + self._chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCallStarted) and event.index not in self._calls:
            index = self._calls[event.index] = len(self._calls)
            function = {"name": event.name, "arguments": ""}
            call = {"index": index, "id": event.id, "type": "function", "function": function}
            return opening + self._chunk({"tool_calls": [call]})
        if isinstance(event, ToolArgumentsDelta) and event.text and event.index in self._calls:
            call = {"index": self._calls[event.index], "function": {"arguments": event.text}}
            return opening + self._chunk({"tool_calls": [call]})
        if isinstance(event, Finished):
            return opening + self._finish(event)
        return opening

    def _finish(self, event: Finished) -> bytes:
        self._finished = True
        usage = event.usage or self._usage
        sent = self._chunk({}, _FINISH_REASON.get(event.stop, "stop"))
        if self._include_usage and usage is not None:
            last = {"id": self._id, "object": "chat.completion.chunk",
                    "created": self._created, "model": self._model, "choices": [],
                    "usage": _openai_usage(usage)}
            sent += _frame(last)
        return sent

    def end(self) -> bytes:
        """
        C{[DONE]}, after a finish chunk if the events had none.
        """
        return self.encode(Finished(END)) + b"data: [DONE]\n\n"

    def fail(self, error: APIError) -> bytes:
        """
        The error document as one more event, as OpenAI reports an error
        in a started stream (the SDKs raise it).
        """
        return b"data: " + error.body() + b"\n\n"


class StreamDecoder:
    """
    Chat chunks as events: those of the choice of index 0, the others
    (C{n} is never above 1 on a translated request) being ignored.

    @ivar usage: the last OpenAI usage object seen, or L{None}; servers
        giving running totals (vLLM) give the final one last.
    """

    def __init__(self) -> None:
        self.usage: dict | None = None
        self._started = self._finished = False
        self._finish_reason: Any = None
        self._calls: dict[Any, int] = {}  # the server's key of a call -> its index
        self._ids: dict[Any, str] = {}  # the server's key of a call -> its id
        self._last: Any = None  # the key of the last call, for deltas with none
        self._count = 0  # tool calls started

    def feed(self, chunk: dict) -> list[Event]:
        """
        The events one decoded chunk (the JSON of a C{data:} line) holds.
        """
        if self._finished or not isinstance(chunk, dict):
            return []
        events: list[Event] = []
        if not self._started:
            self._started = True
            events.append(Started(_text(chunk.get("id")), None, _int(chunk.get("created"))))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        return events

    def _choice(self, choice: dict) -> list[Event]:
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return []
        events: list[Event] = []
        if reasoning := _reasoning(delta):
            events.append(ReasoningDelta(reasoning))
        if text := _text(delta.get("content")) or _text(delta.get("refusal")):
            events.append(TextDelta(text))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                events += self._call(call)
        return events

    def _call(self, call: dict) -> list[Event]:
        """
        The events of one tool call delta. A call is known by its C{index};
        a server that leaves the index out sends a new call with an id and
        its pieces without, and one that reuses an index for a new call
        gives it a new id.
        """
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = _text(call.get("id"))
        key = call.get("index") if isinstance(call.get("index"), int) else (
            ("id", call_id) if call_id else self._last
        )
        events: list[Event] = []
        known = self._ids.get(key)
        if key not in self._calls or (known and call_id and call_id != known):
            index, self._count = self._count, self._count + 1
            self._calls[key], self._ids[key] = index, call_id
            name = _text(function.get("name"))
            events.append(ToolCallStarted(index, call_id or f"call_{index}", name))
        self._last = key
        if arguments := _text(function.get("arguments")):
            events.append(ToolArgumentsDelta(self._calls[key], arguments))
        return events

    def finish(self) -> list[Event]:
        """
        The events that end the stream, once the server has ended it (at
        C{[DONE]} or the end of the body): L{Finished}, after L{Started}
        if no chunk came.
        """
        if self._finished:
            return []
        self._finished = True
        events: list[Event] = [] if self._started else [Started("")]
        usage = _usage_of(self.usage) if self.usage is not None else None
        events.append(Finished(_stop(self._finish_reason, self._count > 0), usage))
        return events
