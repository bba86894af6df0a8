# -*- test-case-name: tests.unit.test_chunks -*-
"""
A complete answer told as a stream: the chunks OpenAI would have streamed
for it, and an L{IEventStream} that delivers them.

Some servers ignore C{"stream": true} and answer in one JSON piece; a
cached answer is one piece too. A client that asked for a stream must
still get one it can read with any SDK, so the answer is cut into the
chunks of OpenAI's streaming format (L{completion_chunks}) and delivered
under back-pressure like any other stream (L{ReplayStream}). Neither knows
where the answer came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from llmedge.providers.base import IBatchedStream

#: The fields of an answer repeated on each of its chunks, in OpenAI's order.
_HEAD = ("id", "object", "created", "model", "service_tier", "system_fingerprint")

#: Message fields that get deltas of their own; the others (reasoning,
#: audio, annotations, a legacy function_call) go in one delta after the role.
_OWN_DELTA = frozenset({"role", "content", "tool_calls", "refusal"})


def completion_chunks(document: dict, include_usage: bool) -> list[bytes]:
    """
    The compact JSON of the chunks streamed for a complete answer: a
    C{chat.completion} becomes C{chat.completion.chunk}s, a legacy
    C{text_completion} becomes C{text_completion} chunks.

    Per choice, in the order of their indexes, a chat answer gives: the
    role; the message's other fields (reasoning and the like), if any; the
    content; one delta per tool call (its C{index}, id, type, function
    name and arguments); the refusal; then the finish reason. The log
    probabilities go with the content, else the refusal, else the finish
    reason. A legacy answer gives the text, then the finish reason. Every
    chunk carries the answer's id, created, model and system fingerprint;
    with C{include_usage}, every chunk has C{"usage": null} and a last one,
    with no choices, the answer's usage (as OpenAI sends them).

    @raise ValueError: the document is not a completion.
    """
    if not isinstance(document, dict):
        raise ValueError("not an object")
    choices = document.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ValueError("no list of choices")
    kind = document.get("object")
    if kind == "text_completion" or (
        kind != "chat.completion" and choices and "message" not in choices[0]
    ):
        kind, per_choice = "text_completion", _text_choice
    else:
        kind, per_choice = "chat.completion.chunk", _chat_choice
    head = {key: kind if key == "object" else document[key]
            for key in _HEAD if key == "object" or key in document}
    tail = {"usage": None} if include_usage else {}
    chunks = []
    numbered = [(c.get("index", n), c) for n, c in enumerate(choices)]
    for index, choice in sorted(numbered, key=lambda pair: _index(pair[0])):
        for part in per_choice(index, choice):
            chunks.append(_compact({**head, "choices": [part], **tail}))
    usage = document.get("usage")
    if include_usage and isinstance(usage, dict):
        chunks.append(_compact({**head, "choices": [], "usage": usage}))
    return chunks


def _index(index: object) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise ValueError("a choice index is not an integer")
    return index


def _chat_choice(index: int, choice: dict) -> list[dict]:
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("a choice without a message")
    content, refusal = message.get("content"), message.get("refusal")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise ValueError("tool calls that are not a list of objects")
    # The role comes first; content "" there, as OpenAI sends it, keeps an
    # empty answer's content a string for the client.
    deltas: list[dict] = [{"role": message.get("role") or "assistant"}]
    if isinstance(content, str):
        deltas[0]["content"] = ""
    other = {k: v for k, v in message.items() if k not in _OWN_DELTA and not _blank(v)}
    if other:
        deltas.append(other)
    said = None  # the delta the log probabilities go with
    if not _blank(content):
        said = {"content": content}
        deltas.append(said)
    for n, call in enumerate(calls):
        fields = {k: v for k, v in call.items() if k != "index"}
        deltas.append({"tool_calls": [{"index": n, **fields}]})
    if not _blank(refusal):
        deltas.append({"refusal": refusal})
        said = said or deltas[-1]
    logprobs = choice.get("logprobs")
    parts = [{"index": index, "delta": delta,
              "logprobs": logprobs if delta is said else None, "finish_reason": None}
             for delta in deltas]
    parts.append({"index": index, "delta": {},
                  "logprobs": logprobs if said is None else None,
                  "finish_reason": choice.get("finish_reason")})
    return parts


def _text_choice(index: int, choice: dict) -> list[dict]:
    text = choice.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError("a choice whose text is not a string")
    logprobs = choice.get("logprobs")
    parts = []
    if text:
        parts.append({"text": text, "index": index, "logprobs": logprobs,
                      "finish_reason": None})
    parts.append({"text": "", "index": index, "logprobs": None if text else logprobs,
                  "finish_reason": choice.get("finish_reason")})
    return parts


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _compact(chunk: dict) -> bytes:
    try:
        return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, escaped in the answer's JSON
        return json.dumps(chunk, separators=(",", ":")).encode("ascii")


@implementer(IBatchedStream)
class ReplayStream:
    """
    Events already in memory, delivered as a stream under back-pressure:
    while paused nothing is delivered, on resume delivery goes on where it
    stopped, and stopping fails L{start}'s Deferred with
    L{CancelledError}. The events delivered in one go (all of them, unless
    the client's buffer fills first) are one batch: the front writes them
    in one piece (L{IBatchedStream}).

    @ivar usage: the answer's usage, for the token counts.
    @ivar headers: upstream response headers to pass on.
    """

    def __init__(
        self,
        events: Sequence[bytes],
        usage: dict | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.usage = usage
        self.headers = headers
        self._events = events
        self._next = 0
        self._paused = False
        self._delivering = False
        self._receiver: Callable[[bytes], None] | None = None
        self._flush: Callable[[], None] | None = None
        self._done: Deferred[None] | None = None

    def start(
        self, receiver: Callable[[bytes], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        self._receiver = receiver
        self._flush = flush
        done = self._done = Deferred(self._cancel)
        self._deliver()
        return done

    def _deliver(self) -> None:
        if self._delivering:  # resumed by the receiver: the loop below goes on
            return
        self._delivering = True
        try:
            while not self._paused and self._done is not None and self._next < len(self._events):
                event = self._events[self._next]
                self._next += 1
                self._receiver(event)
        except Exception:
            done, self._done = self._done, None
            if done is not None:
                done.errback(Failure())
        finally:
            self._delivering = False
        if self._flush is not None and self._done is not None:
            self._flush()
        if self._done is not None and self._next == len(self._events):
            done, self._done = self._done, None
            done.callback(None)

    def _cancel(self, done: Deferred) -> None:
        # Deferred.cancel fails it with CancelledError itself.
        self._done = None

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._done is not None:
            self._deliver()

    def stopProducing(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done.errback(CancelledError())
