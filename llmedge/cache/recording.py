# -*- test-case-name: tests.unit.test_cache_recording -*-
"""
A stream told to the client and, on the side, kept for the response cache.

A streamed answer is stored only once it is whole, and the client must not
wait for the cache or see anything else than it would without one: so the
tap passes each item on first, then reads it into a L{Reply}, and hands the
reply to the cache only when the stream ended well and told its end (a
L{Finished}). A stream that fails, is stopped (the client left), is cut by
the deadline, grows past the entry bound, or says something its reader
cannot read is simply not recorded: what was held is dropped, and the
client's stream goes on untouched.

What a stream's items are depends on the provider; a reader per kind
(L{llmedge.cache.readers}, re-exported here) turns them into reply events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from llmedge.cache.readers import ChatChunkReader, EventReader, MessagesReader, ResponsesReader
from llmedge.dialects.reply import (
    Accumulator, Event, Finished, ReasoningDelta, Reply, Started, TextDelta,
    ToolArgumentsDelta, ToolCallStarted, Usage,
)
from llmedge.providers.wrapped import WrappedStream

__all__ = ["ChatChunkReader", "EventReader", "MessagesReader", "ResponsesReader", "recorded"]


def _size(item: Any) -> int:
    """
    What an item costs to hold: its bytes, or its text.
    """
    if isinstance(item, bytes):
        return len(item)
    if isinstance(item, TextDelta | ToolArgumentsDelta):
        return len(item.text)
    if isinstance(item, ReasoningDelta):
        return len(item.text) + len(item.signature or "")
    if isinstance(item, ToolCallStarted):
        return len(item.id) + len(item.name)
    return 0


def _openai_usage(usage: dict) -> Usage:
    def count(value: Any) -> int:
        return value if type(value) is int and value > 0 else 0

    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(count(usage.get("prompt_tokens")), count(usage.get("completion_tokens")),
                 count(cached))


class _Gatherer:
    """
    An L{Accumulator} fed runs of deltas joined: it adds each delta to the
    part before by copying it, which is quadratic in a long answer's
    deltas; joining a run first keeps recording linear.
    """

    def __init__(self) -> None:
        self.accumulator = Accumulator()
        self.finished = False
        self.usage_told = False  # whether any event carried the usage
        self._run: tuple | None = None  # what the held pieces are
        self._pieces: list[str] = []
        self._signature: str | None = None

    def feed(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            run: tuple | None = (TextDelta,)
        elif isinstance(event, ReasoningDelta):
            run = (ReasoningDelta,)
        elif isinstance(event, ToolArgumentsDelta):
            run = (ToolArgumentsDelta, event.index)
        else:
            run = None
        if run != self._run:
            self._flush()
            self._run = run
        if run is None:
            self.finished = self.finished or isinstance(event, Finished)
            if isinstance(event, Started | Finished) and event.usage is not None:
                self.usage_told = True
            self.accumulator.feed(event)
            return
        self._pieces.append(event.text)
        if isinstance(event, ReasoningDelta):
            self._signature = event.signature or self._signature

    def _flush(self) -> None:
        run, text = self._run, "".join(self._pieces)
        if run is not None:
            self._pieces, signature, self._signature = [], self._signature, None
            if run[0] is ToolArgumentsDelta:
                self.accumulator.feed(ToolArgumentsDelta(run[1], text))
            elif run[0] is ReasoningDelta:
                self.accumulator.feed(ReasoningDelta(text, signature))
            else:
                self.accumulator.feed(TextDelta(text))
        self._run = None

    def reply(self) -> Reply:
        self._flush()
        return self.accumulator.reply


class Recording(WrappedStream):
    """
    C{stream}, its items read by C{reader} into the reply C{keep} is
    given once the stream ended well; see L{recorded}.
    """

    _log = Logger()

    def __init__(self, stream, reader, max_bytes: int, keep: Callable[[Reply], Any]) -> None:
        super().__init__(stream)
        self._reader = reader
        self._max_bytes = max_bytes
        self._keep = keep
        self._seen = 0
        self._gathered: _Gatherer | None = _Gatherer()

    def start(
        self, receiver: Callable[[Any], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        def receive(item: Any) -> None:
            try:
                receiver(item)
            except BaseException:
                self._give_up()
                raise
            self._record(item)

        # The end of a batch is the client's business only: passed on as is.
        return super().start(receive, flush).addBoth(self._ended)

    def _record(self, item: Any) -> None:
        if self._gathered is None:
            return
        self._seen += _size(item)
        if self._seen > self._max_bytes:
            self._give_up()
            return
        try:
            for event in self._reader.feed(item):
                self._gathered.feed(event)
        except Exception:
            self._give_up()

    def _give_up(self) -> None:
        self._gathered = self._reader = None

    def _ended(self, result: Any) -> Any:
        gathered, reader = self._gathered, self._reader
        self._give_up()
        if gathered is None or reader is None or isinstance(result, Failure):
            return result
        try:
            for event in reader.finish():
                gathered.feed(event)
            if gathered.finished:
                reply = gathered.reply()
                usage = self._stream.usage
                if not gathered.usage_told and isinstance(usage, dict):
                    # A chat stream whose usage llmedge asked for itself
                    # relays it to no one: the stream knows it.
                    reply.usage = _openai_usage(usage)
                self._keep(reply)
        except Exception:
            self._log.failure("Recording a stream for the response cache failed")
        return result

    def stopProducing(self) -> None:
        self._give_up()
        self._stream.stopProducing()


def recorded(stream, reader, max_bytes: int, keep: Callable[[Reply], Any]) -> Recording:
    """
    C{stream} as it is, with each item also read by C{reader} (one of the
    readers above, for what the stream delivers); once the stream has
    ended well with a whole answer of at most C{max_bytes}, C{keep} is
    called with it.
    """
    return Recording(stream, reader, max_bytes, keep)
