# -*- test-case-name: tests.unit.test_dialect_chat -*-
"""
A model's answer, whole or as a stream: the answer half of the internal
representation.

A provider that does not speak the client's dialect answers with a
L{Reply} or with a stream of the events below (an L{IEventStream} whose
receiver gets event objects, marked L{IReplyStream}); the client's codec
encodes them. The events are the least every dialect's stream can be made
from: Chat Completions chunks, Responses' typed events and Messages'
content blocks are each a different grouping of them.

A stream is: L{Started}, then any number of L{TextDelta},
L{ReasoningDelta}, L{ToolCallStarted} and L{ToolArgumentsDelta} (a tool
call's deltas follow its start; text and tool calls may interleave, each
run of one kind is one content block), then L{Finished}. Usage may be
known at L{Started} (the prompt) and is final at L{Finished}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from twisted.internet.interfaces import IPushProducer

from llmedge.dialects.conversation import Reasoning, Text, ToolCall

#: Why a model stopped, in llmedge's words; each codec has its own.
END = "end"                      # the model finished its turn
LENGTH = "length"                # cut by max_tokens
STOP_SEQUENCE = "stop_sequence"  # met a stop sequence
TOOL_CALLS = "tool_calls"        # stopped to have tools called
CONTENT_FILTER = "content_filter"  # refused or filtered
PAUSE = "pause"                  # paused a long turn, to be continued


@dataclass(slots=True)
class Usage:
    """
    Token counts. C{input_tokens} counts every prompt token, cached ones
    included (OpenAI's C{prompt_tokens}); C{cached_tokens} says how many of
    them were read from the provider's prompt cache.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def openai(self) -> dict[str, int]:
        """
        OpenAI's usage object, which the token limits and metrics read.
        """
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Reply:
    """
    A complete answer.

    @ivar id: the provider's id for it (without any dialect prefix), or "".
    @ivar parts: text, reasoning and tool calls, in the model's order.
    @ivar stop: one of the stop reasons above.
    @ivar stop_sequence: the stop sequence met, when the provider says.
    @ivar created: when it was made, in seconds since the epoch.
    """

    id: str
    parts: list[Text | Reasoning | ToolCall]
    stop: str = END
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None
    created: int = 0

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [p for p in self.parts if isinstance(p, ToolCall)]


@dataclass(frozen=True, slots=True)
class Started:
    id: str
    usage: Usage | None = None
    created: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str = ""
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """
    A tool call begins; C{index} numbers the reply's tool calls from 0.
    """

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgumentsDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    stop: str
    usage: Usage | None = None
    stop_sequence: str | None = None


Event = Union[Started, TextDelta, ReasoningDelta, ToolCallStarted, ToolArgumentsDelta, Finished]


class IReplyStream(IPushProducer):
    """
    An L{llmedge.providers.base.IEventStream} whose receiver is given the
    events above rather than the bytes of the client's dialect: the front
    encodes them. Its C{usage} is OpenAI's usage object, as for any stream.
    """


def events_of(reply: Reply) -> list[Event]:
    """
    The stream a complete reply stands for: one delta per part, so a
    cached or unstreamed answer can be told to a client that asked for a
    stream by the same encoder as a live one.
    """
    events: list[Event] = [Started(reply.id, None, reply.created)]
    calls = 0
    for part in reply.parts:
        if isinstance(part, Text):
            events.append(TextDelta(part.text))
        elif isinstance(part, Reasoning):
            events.append(ReasoningDelta(part.text, part.signature))
        elif isinstance(part, ToolCall):
            events.append(ToolCallStarted(calls, part.id, part.name))
            events.append(ToolArgumentsDelta(calls, part.arguments))
            calls += 1
    events.append(Finished(reply.stop, reply.usage, reply.stop_sequence))
    return events


class Accumulator:
    """
    Gather a stream's events into the L{Reply} they add up to, for a
    client that asked for a whole answer from a provider that streamed, and
    for the response cache.
    """

    def __init__(self) -> None:
        self.reply = Reply("", [])
        # tool call index -> its place in parts
        self._calls: dict[int, int] = {}

    def feed(self, event: Event) -> None:
        reply = self.reply
        parts = reply.parts
        if isinstance(event, Started):
            reply.id, reply.created = event.id, event.created
            if event.usage is not None:
                reply.usage = event.usage
        elif isinstance(event, TextDelta):
            if parts and isinstance(parts[-1], Text):
                parts[-1] = Text(parts[-1].text + event.text)
            else:
                parts.append(Text(event.text))
        elif isinstance(event, ReasoningDelta):
            if parts and isinstance(parts[-1], Reasoning):
                last = parts[-1]
                parts[-1] = Reasoning(last.text + event.text, event.signature or last.signature)
            else:
                parts.append(Reasoning(event.text, event.signature))
        elif isinstance(event, ToolCallStarted):
            self._calls[event.index] = len(parts)
            parts.append(ToolCall(event.id, event.name, ""))
        elif isinstance(event, ToolArgumentsDelta):
            place = self._calls.get(event.index)
            if place is not None:
                call = parts[place]
                parts[place] = ToolCall(call.id, call.name, call.arguments + event.text)
        elif isinstance(event, Finished):
            reply.stop, reply.stop_sequence = event.stop, event.stop_sequence
            if event.usage is not None:
                reply.usage = event.usage
