# -*- test-case-name: tests.unit.test_translated -*-
"""
The stream handlers of a provider answering in another dialect than the
client's, or in the same one passed through.

A provider that translates reads its upstream's events with its dialect's
stream decoder and hands the front L{llmedge.dialects.reply} events (the
stream is marked L{IReplyStream}, and the client's codec encodes them). A
provider passing a stream through hands the front each upstream event
framed as it came (its type and data), checking only what llmedge needs:
the usage, for the token counts, and the event that ends the stream, so a
stream cut short is still told apart from one that ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import alsoProvides

from llmedge.dialects import chat_reply, messages_reply
from llmedge.dialects.reply import IReplyStream, Reply, events_of
from llmedge.dialects.responses import usage_of
from llmedge.errors import APIError
from llmedge.providers.chunks import ReplayStream
from llmedge.jsonwire import loads


def _object(data: bytes) -> dict[str, Any]:
    document = loads(data, constants=True)
    if not isinstance(document, dict):
        raise ValueError("an event that is not a JSON object")
    return document


def reply_stream(stream):
    """
    Mark C{stream} as delivering L{llmedge.dialects.reply} events.
    """
    alsoProvides(stream, IReplyStream)
    return stream


def replayed(reply: Reply, headers: tuple[tuple[bytes, bytes], ...] = ()) -> ReplayStream:
    """
    A complete reply told as a stream, for a client that asked for one
    from an upstream that answered in one piece.
    """
    return reply_stream(ReplayStream(events_of(reply), reply.usage.openai(), headers))


class ChatEvents:
    """
    Chat Completions chunks read as reply events; the stream ends at
    C{[DONE]}.
    """

    def __init__(self) -> None:
        self._decoder = chat_reply.StreamDecoder()

    @property
    def usage(self) -> dict | None:
        return self._decoder.usage

    def __call__(self, event: bytes | None, data: bytes, deliver: Callable) -> bool:
        if data == b"[DONE]":
            for item in self._decoder.finish():
                deliver(item)
            return True
        document = _object(data)
        if "error" in document and "choices" not in document:
            # Some servers (vLLM, LiteLLM) report a failure mid-stream so.
            error = document["error"]
            said = error.get("message") if isinstance(error, dict) else None
            raise APIError(502, "The model's provider failed during the stream"
                           + (f": {said[:500]}" if isinstance(said, str) and said else "."),
                           type="upstream_error", code="upstream_error")
        for item in self._decoder.feed(document):
            deliver(item)
        return False


class MessagesEvents:
    """
    Anthropic Messages events read as reply events; the stream ends at
    C{message_stop}, and an C{error} event fails it with the error it
    stands for.
    """

    def __init__(self) -> None:
        self._decoder = messages_reply.StreamDecoder()

    @property
    def usage(self) -> dict | None:
        return self._decoder.usage

    def __call__(self, event: bytes | None, data: bytes, deliver: Callable) -> bool:
        document = _object(data)
        kind = (event or b"").decode("ascii", "replace") or str(document.get("type", ""))
        items = self._decoder.feed(kind, document)  # an error event raises its error
        self._deliver(items, event, data, deliver)
        return kind == "message_stop"

    def _deliver(self, items: list, event: bytes | None, data: bytes, deliver: Callable) -> None:
        for item in items:
            deliver(item)


def _framed(event: bytes | None, data: bytes) -> bytes:
    head = b"event: " + event + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


class MessagesPassThrough(MessagesEvents):
    """
    An Anthropic stream relayed to an Anthropic client event by event, as
    it came; the events are decoded only for their usage (and errors).
    """

    def _deliver(self, items: list, event: bytes | None, data: bytes, deliver: Callable) -> None:
        deliver(_framed(event, data))


#: The events that end a Responses stream.
_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesPassThrough:
    """
    A Responses API stream relayed to a Responses client event by event;
    the usage comes with the event that ends it.
    """

    def __init__(self) -> None:
        self.usage: dict | None = None

    def __call__(self, event: bytes | None, data: bytes, deliver: Callable) -> bool:
        document = _object(data)
        kind = str(document.get("type", "")) or (event or b"").decode("ascii", "replace")
        deliver(_framed(event, data))
        if kind in _RESPONSE_ENDS:
            response = document.get("response")
            self.usage = usage_of(response) if isinstance(response, dict) else None
            return True
        return kind == "error"
