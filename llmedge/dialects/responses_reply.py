# -*- test-case-name: tests.unit.test_dialect_responses -*-
"""
Replies as Responses answers: the C{response} object, or the stream of
typed events that builds it, for the clients of L{responses}.

Responses streams items, not chunks: each message, reasoning and function
call is added, filled by deltas and done, and the stream ends with the
whole response. The openai SDK's C{responses.stream()} holds a client to
that order (nothing before C{response.created}, no delta for an item not
added, no completed response while an item is not done, one id per item
throughout), so the encoder opens and closes items itself, whatever order
the deltas come in: a run of text is one message item, a run of reasoning
one reasoning item, each tool call one function call item, open until
the end since its arguments may come interleaved with another's. What the
stream ends with is L{encode_reply} of the reply its events add up to.
"""

from __future__ import annotations

from typing import Any

from llmedge.dialects.conversation import Conversation, ToolCall
from llmedge.dialects.reply import (
    END,
    Accumulator,
    Event,
    Finished,
    ReasoningDelta,
    Reply,
    Started,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStarted,
)
from llmedge.dialects.responses_document import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    function_call_item,
    item_id,
    items_of,
    message_item,
    output_text,
    reasoning_item,
    response_id,
    response_object,
    status_of,
)
from llmedge.errors import APIError
from llmedge.jsonwire import json_bytes

__all__ = ["StreamEncoder", "encode_reply"]


def encode_reply(reply: Reply, conversation: Conversation, created: int) -> dict:
    """
    The C{response} object for C{reply}: C{completed}, or C{incomplete}
    when the answer was cut (by length or by a filter).
    """
    id = response_id(reply.id, created)
    return response_object(conversation, created, id, items_of(reply.parts, id),
                           status_of(reply.stop), reply.stop, reply.usage)


class _Item:
    """
    An output item the stream has added and not yet done.

    @ivar kind: C{msg}, C{rs} or C{fc}.
    @ivar pieces: the text or arguments told so far.
    @ivar call: for a function call, what it calls.
    @ivar opened: for reasoning, whether its summary part was added.
    """

    def __init__(self, kind: str, index: int, id: str, call: ToolCall | None = None) -> None:
        self.kind, self.index, self.id, self.call = kind, index, id, call
        self.pieces: list[str] = []
        self.opened = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)


#: The most text a Responses stream holds for its closing events, unless
#: told otherwise (llmedge gives C{upstream.max_response_bytes}).
MAX_HELD = 64 * 1024 * 1024


class StreamEncoder:
    """
    The server-sent events of one Responses stream, numbered from 0.

    Unlike the other dialects' streams, this one ends by repeating the
    whole answer (C{output_text.done}, C{response.completed}), so it holds
    what it relayed: at most C{max_bytes} of text, reasoning and tool
    arguments, as a whole answer from the provider would be held; past it
    the stream fails with 502 C{upstream_response_too_large}.
    """

    def __init__(self, conversation: Conversation, created: int,
                 max_bytes: int = MAX_HELD) -> None:
        self._conversation, self._created = conversation, created
        self._max_bytes = max_bytes
        self._held = 0
        self._replies = Accumulator()
        self._id = ""
        self._sequence = 0
        self._next_index = 0
        self._run: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._started = self._over = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode("ascii") + b"\ndata: " + json_bytes(data) + b"\n\n"

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(self._conversation, self._created, self._id, [], status, **fields)

    def _start(self, started: Started) -> list[bytes]:
        self._started = True
        self._replies.feed(started)
        self._id = response_id(started.id, self._created)
        response = self._response(IN_PROGRESS)
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    def _open(self, kind: str, call: ToolCall | None = None) -> _Item:
        index = self._next_index
        self._next_index += 1
        return _Item(kind, index, item_id(self._id, kind, index), call)

    def _where(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index}

    def _text(self, delta: str) -> list[bytes]:
        out = []
        if self._run is None or self._run.kind != "msg":
            out += self._end_run()
            self._run = run = self._open("msg")
            out.append(self._event("response.output_item.added", output_index=run.index,
                                   item=message_item(run.id, None, IN_PROGRESS)))
            out.append(self._event("response.content_part.added", **self._where(run),
                                   content_index=0, part=output_text("")))
        run = self._run
        if delta:
            run.pieces.append(delta)
            out.append(self._event("response.output_text.delta", **self._where(run),
                                   content_index=0, delta=delta, logprobs=[]))
        return out

    def _reasoning(self, delta: str) -> list[bytes]:
        out = []
        if self._run is None or self._run.kind != "rs":
            out += self._end_run()
            self._run = run = self._open("rs")
            out.append(self._event("response.output_item.added", output_index=run.index,
                                   item=reasoning_item(run.id, "")))
        run = self._run
        if delta:
            if not run.opened:
                run.opened = True
                out.append(self._event("response.reasoning_summary_part.added",
                                       **self._where(run), summary_index=0,
                                       part={"type": "summary_text", "text": ""}))
            run.pieces.append(delta)
            out.append(self._event("response.reasoning_summary_text.delta",
                                   **self._where(run), summary_index=0, delta=delta))
        return out

    def _call(self, event: ToolCallStarted) -> list[bytes]:
        out = self._end_run()
        call = self._calls[event.index] = self._open("fc", ToolCall(event.id, event.name, ""))
        item = function_call_item(call.id, call.call, IN_PROGRESS)
        out.append(self._event("response.output_item.added", output_index=call.index,
                               item=item))
        return out

    def _arguments(self, event: ToolArgumentsDelta) -> list[bytes]:
        call = self._calls.get(event.index)
        if call is None or not event.text:
            return []
        call.pieces.append(event.text)
        return [self._event("response.function_call_arguments.delta", **self._where(call),
                            delta=event.text)]

    def _done(self, item: _Item) -> list[bytes]:
        """
        The events that finish C{item}, the last one holding it whole.
        """
        text, where, out = item.text, self._where(item), []
        if item.kind == "msg":
            out.append(self._event("response.output_text.done", **where, content_index=0,
                                   text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", **where, content_index=0,
                                   part=output_text(text)))
            whole = message_item(item.id, text)
        elif item.kind == "rs":
            if item.opened:
                summary = {"type": "summary_text", "text": text}
                out.append(self._event("response.reasoning_summary_text.done", **where,
                                       summary_index=0, text=text))
                out.append(self._event("response.reasoning_summary_part.done", **where,
                                       summary_index=0, part=summary))
            whole = reasoning_item(item.id, text)
        else:
            out.append(self._event("response.function_call_arguments.done", **where,
                                   arguments=text))
            call = ToolCall(item.call.id, item.call.name, text)
            whole = function_call_item(item.id, call)
        out.append(self._event("response.output_item.done", output_index=item.index,
                               item=whole))
        return out

    def _end_run(self) -> list[bytes]:
        run, self._run = self._run, None
        return [] if run is None else self._done(run)

    def _finish(self) -> list[bytes]:
        out = []
        items = sorted([*self._calls.values(), *filter(None, [self._run])],
                       key=lambda item: item.index)
        self._run, self._calls = None, {}
        for item in items:
            out += self._done(item)
        self._over = True
        response = encode_reply(self._replies.reply, self._conversation, self._created)
        kind = "response.completed" if response["status"] == COMPLETED else (
            "response.incomplete")
        out.append(self._event(kind, response=response))
        return out

    def encode(self, event: Event) -> bytes:
        """
        The events C{event} becomes: a stream that did not begin with
        L{Started} is given one; anything after L{Finished} is ignored.
        """
        if self._over:
            return b""
        out = []
        if not self._started:
            out += self._start(event if isinstance(event, Started) else Started(""))
        if isinstance(event, Started):
            return b"".join(out)
        if isinstance(event, TextDelta | ReasoningDelta | ToolArgumentsDelta):
            self._held += len(event.text)
            if self._held > self._max_bytes:
                raise APIError(502, f"The model's provider sent an answer over "
                               f"{self._max_bytes} bytes.", type="upstream_error",
                               code="upstream_response_too_large")
        self._replies.feed(event)
        if isinstance(event, TextDelta):
            out += self._text(event.text)
        elif isinstance(event, ReasoningDelta):
            out += self._reasoning(event.text)
        elif isinstance(event, ToolCallStarted):
            out += self._call(event)
        elif isinstance(event, ToolArgumentsDelta):
            out += self._arguments(event)
        elif isinstance(event, Finished):
            out += self._finish()
        return b"".join(out)

    def end(self) -> bytes:
        """
        Nothing, after L{Finished}; a stream that ended well without one
        is finished as a model's end of turn, so the client gets its
        response.
        """
        return b"" if self._over else self.encode(Finished(END))

    def fail(self, error: APIError) -> bytes:
        """
        A C{response.failed} event with the output so far, items not done
        still in progress; after the response was told whole, an C{error}
        event, the stream's own way of saying it broke.
        """
        code = error.code or error.type
        if self._over:
            return self._event("error", code=code, message=error.message, param=error.param)
        out = [] if self._started else self._start(Started(""))
        output = items_of(self._replies.reply.parts, self._id)
        for item in [*self._calls.values(), *filter(None, [self._run])]:
            if item.kind != "rs" and item.index < len(output):
                output[item.index]["status"] = IN_PROGRESS
        self._over = True
        response = response_object(
            self._conversation, self._created, self._id, output, FAILED,
            usage=self._replies.reply.usage, error={"code": code, "message": error.message})
        out.append(self._event("response.failed", response=response))
        return b"".join(out)
