# -*- test-case-name: tests.unit.test_cache_recording -*-
"""
The items of a provider's stream read as reply events, for the response
cache's tap (L{llmedge.cache.recording}).

What a stream's items are depends on the provider: reply events (a
translated stream), a chat chunk's JSON, or a Messages or Responses event
passed through, framed as L{llmedge.providers.translated} frames it. Each
reader turns one kind into the events of L{llmedge.dialects.reply}, and
raises on anything that is not part of an answer (an error event, bytes
that do not parse): the tap then stops recording, and the client's stream
goes on as it was.
"""

from __future__ import annotations

import json

from llmedge.dialects import chat_reply, messages_reply
from llmedge.dialects.reply import Event, events_of
from llmedge.dialects.responses_read import decode_reply

__all__ = ["ChatChunkReader", "EventReader", "MessagesReader", "ResponsesReader"]


class EventReader:
    """
    Items of an L{llmedge.dialects.reply.IReplyStream}: already events.
    """

    def feed(self, item: Event) -> list[Event]:
        return [item]

    def finish(self) -> list[Event]:
        return []


class ChatChunkReader:
    """
    Chat chunks passed through, each the JSON of one C{data:} line. A
    server's error document (vLLM and LiteLLM send one mid-stream) stops
    the recording: it is not an answer.
    """

    def __init__(self) -> None:
        self._decoder = chat_reply.StreamDecoder()

    def feed(self, item: bytes) -> list[Event]:
        if item == b"[DONE]":
            return []
        chunk = json.loads(item)
        if not isinstance(chunk, dict) or ("error" in chunk and "choices" not in chunk):
            raise ValueError("a chunk that is not part of an answer")
        return self._decoder.feed(chunk)

    def finish(self) -> list[Event]:
        return self._decoder.finish()


def _unframed(item: bytes) -> tuple[bytes | None, bytes]:
    """
    The type and data of an event framed as
    L{llmedge.providers.translated} frames a passed-through one.
    """
    event = None
    if item.startswith(b"event: "):
        head, _, item = item.partition(b"\n")
        event = head[len(b"event: "):]
    if not item.startswith(b"data: ") or not item.endswith(b"\n\n"):
        raise ValueError("not a framed event")
    return event, item[len(b"data: "):-2]


class MessagesReader:
    """
    Anthropic Messages events passed through; an C{error} event stops the
    recording (the decoder raises it).
    """

    def __init__(self) -> None:
        self._decoder = messages_reply.StreamDecoder()

    def feed(self, item: bytes) -> list[Event]:
        event, data = _unframed(item)
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("an event that is not a JSON object")
        kind = event.decode("ascii", "replace") if event else str(document.get("type", ""))
        return self._decoder.feed(kind, document)

    def finish(self) -> list[Event]:
        return []


_COMPLETED = b"response.completed"


class ResponsesReader:
    """
    A Responses stream passed through. Its last event holds the whole
    answer, so only C{response.completed} is read (other events are not
    even parsed); a stream that ends otherwise (incomplete, failed, an
    error) gives nothing, and is not stored.
    """

    def __init__(self) -> None:
        self._done = False

    def feed(self, item: bytes) -> list[Event]:
        event, data = _unframed(item)
        if self._done or (event or _COMPLETED) != _COMPLETED or _COMPLETED not in data:
            return []
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("type") != "response.completed":
            return []
        self._done = True
        return events_of(decode_reply(document.get("response")))

    def finish(self) -> list[Event]:
        return []
