"""
The stream handlers of translating and passing-through providers.
"""

import json

import pytest

from llmedge.dialects.reply import Finished, IReplyStream, Started, TextDelta
from llmedge.errors import APIError
from llmedge.providers.chunks import ReplayStream
from llmedge.providers.translated import (
    ChatEvents,
    MessagesPassThrough,
    ResponsesPassThrough,
    reply_stream,
)
from llmedge.routing.tracked import Tracked


def chunk(**delta):
    return json.dumps({"id": "c1", "created": 1, "choices": [
        {"index": 0, "delta": delta, "finish_reason": None}]}).encode()


def test_chat_chunks_become_reply_events_ending_at_done():
    handle, got = ChatEvents(), []
    assert handle(None, chunk(role="assistant", content=""), got.append) is False
    handle(None, chunk(content="Hi"), got.append)
    assert handle(None, b"[DONE]", got.append) is True
    assert isinstance(got[0], Started) and TextDelta("Hi") in got
    assert isinstance(got[-1], Finished)


def test_an_error_chunk_mid_stream_fails_it():
    with pytest.raises(APIError) as caught:
        ChatEvents()(None, b'{"error": {"message": "overloaded"}}', [].append)
    assert caught.value.status == 502 and "overloaded" in caught.value.message


def test_messages_events_pass_through_framed_as_they_came():
    handle, got = MessagesPassThrough(), []
    start = {"type": "message_start", "message": {
        "id": "msg_1", "usage": {"input_tokens": 5, "output_tokens": 1}}}
    handle(b"message_start", json.dumps(start).encode(), got.append)
    assert got == [b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"]
    assert handle.usage["prompt_tokens"] == 5
    assert handle(b"message_stop", b'{"type": "message_stop"}', got.append) is True


def test_a_messages_error_event_passed_through_fails_the_stream():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    with pytest.raises(APIError):
        MessagesPassThrough()(b"error", json.dumps(error).encode(), [].append)


def test_responses_pass_through_reads_usage_from_the_last_event():
    handle, got = ResponsesPassThrough(), []
    assert handle(b"response.created", b'{"type": "response.created"}', got.append) is False
    done = {"type": "response.completed", "response": {
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}}}
    assert handle(b"response.completed", json.dumps(done).encode(), got.append) is True
    assert handle.usage["prompt_tokens"] == 3 and handle.usage["completion_tokens"] == 4
    assert len(got) == 2


def test_a_tracked_stream_keeps_what_its_stream_delivers():
    # The count it keeps is not touched until the stream ends.
    stream = reply_stream(ReplayStream([]))
    assert IReplyStream.providedBy(Tracked(stream, None))
    assert not IReplyStream.providedBy(Tracked(ReplayStream([]), None))
