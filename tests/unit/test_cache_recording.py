# -*- test-case-name: tests.unit.test_cache_recording -*-
"""
Specification of the response cache's stream tap (L{llmedge.cache.recording})
and its readers (L{llmedge.cache.readers}): the client gets every item as
it would without the tap, and a whole answer, and only a whole answer, is
handed to the cache. On plain Deferreds: no reactor.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer
from zope.interface.verify import verifyObject

from llmedge.cache import recording
from llmedge.cache.recording import (
    ChatChunkReader, EventReader, MessagesReader, ResponsesReader, recorded,
)
from llmedge.dialects import chat_reply, messages_reply
from llmedge.dialects.conversation import Conversation, Reasoning, Text, ToolCall
from llmedge.dialects.reply import (
    END, TOOL_CALLS, Finished, IReplyStream, ReasoningDelta, Reply, Started, TextDelta,
    ToolArgumentsDelta, ToolCallStarted, Usage, events_of,
)
from llmedge.dialects.responses_reply import StreamEncoder as ResponsesEncoder
from llmedge.errors import APIError
from llmedge.providers.base import IEventStream

CONVERSATION = Conversation("m", [], include_usage=True)
REPLY = Reply("abc", [Reasoning("hmm", "sig"), Text("Hello, world"),
                      ToolCall("call_1", "get", '{"q": 1}')], TOOL_CALLS, Usage(9, 4, 2), None, 5)


@implementer(IEventStream)
class Stream:
    """
    A provider's stream the test drives: it delivers what it is told, and
    ends or fails when told.
    """

    def __init__(self, usage=None, headers=()):
        self.usage, self.headers = usage, headers
        self.log: list[str] = []
        self.done: Deferred | None = None

    def start(self, receiver):
        self.receiver = receiver
        self.done = Deferred(lambda _: self.log.append("cancelled"))
        return self.done

    def send(self, *items):
        for item in items:
            self.receiver(item)

    def pauseProducing(self):
        self.log.append("paused")

    def resumeProducing(self):
        self.log.append("resumed")

    def stopProducing(self):
        self.log.append("stopped")


class Tap:
    """
    A recorded stream, what its client got and what the cache was given.
    """

    def __init__(self, reader, items=(), max_bytes=1 << 20, stream=None):
        self.stream = stream or Stream()
        self.kept: list[Reply] = []
        self.got: list = []
        self.recording = recorded(self.stream, reader, max_bytes, self.kept.append)
        self.done = self.recording.start(self.got.append)
        self.stream.send(*items)

    def end(self):
        results = []
        self.done.addBoth(results.append)
        self.stream.done.callback(None)
        assert results == [None]


def split_events(data: bytes) -> list[bytes]:
    """
    A server-sent event stream as framed events, each ending in a blank line.
    """
    return [event + b"\n\n" for event in data.split(b"\n\n") if event]


def chat_chunks(reply: Reply) -> list[bytes]:
    encoder = chat_reply.StreamEncoder(CONVERSATION, reply.created)
    data = b"".join(encoder.encode(e) for e in events_of(reply))
    return [event[len(b"data: "):-2] for event in split_events(data)]


def messages_events(reply: Reply) -> list[bytes]:
    encoder = messages_reply.StreamEncoder(CONVERSATION, reply.created)
    return split_events(b"".join(encoder.encode(e) for e in events_of(reply)) + encoder.end())


def responses_events(reply: Reply) -> list[bytes]:
    encoder = ResponsesEncoder(CONVERSATION, reply.created)
    return split_events(b"".join(encoder.encode(e) for e in events_of(reply)) + encoder.end())


# The tap


def test_the_tap_provides_what_its_stream_provides():
    stream = Stream()
    alsoProvides(stream, IReplyStream)
    recording = recorded(stream, EventReader(), 100, print)
    assert verifyObject(IEventStream, recording)
    assert IReplyStream.providedBy(recording)


def test_the_tap_passes_on_usage_and_headers():
    stream = Stream({"prompt_tokens": 1}, ((b"x-a", b"b"),))
    recording = recorded(stream, EventReader(), 100, print)
    assert (recording.usage, recording.headers) == (stream.usage, stream.headers)


def test_the_tap_passes_on_pause_resume_and_stop():
    tap = Tap(EventReader())
    tap.recording.pauseProducing()
    tap.recording.resumeProducing()
    tap.recording.stopProducing()
    assert tap.stream.log == ["paused", "resumed", "stopped"]


def test_the_client_gets_every_item_unchanged_and_at_once():
    events = events_of(REPLY)
    tap = Tap(EventReader(), events[:2])
    assert tap.got == events[:2]
    tap.stream.send(*events[2:])
    assert tap.got == events


def test_a_whole_stream_is_kept_when_it_ends():
    tap = Tap(EventReader(), events_of(REPLY))
    assert tap.kept == []
    tap.end()
    assert tap.kept == [REPLY]


def test_deltas_add_up_to_the_reply():
    events = [Started("i", None, 3), ReasoningDelta("a"), ReasoningDelta("b"),
              ReasoningDelta("", "sig"), TextDelta("He"), TextDelta("llo"),
              ToolCallStarted(0, "c0", "f"), ToolCallStarted(1, "c1", "g"),
              ToolArgumentsDelta(0, "{"), ToolArgumentsDelta(1, "["), ToolArgumentsDelta(1, "]"),
              ToolArgumentsDelta(0, "}"), TextDelta("!"), Finished(END, Usage(1, 2))]
    tap = Tap(EventReader(), events)
    tap.end()
    assert tap.kept == [Reply("i", [Reasoning("ab", "sig"), Text("Hello"),
                                    ToolCall("c0", "f", "{}"), ToolCall("c1", "g", "[]"),
                                    Text("!")], END, Usage(1, 2), None, 3)]


def test_a_stream_that_ends_without_its_end_is_not_kept():
    tap = Tap(EventReader(), events_of(REPLY)[:-1])
    tap.end()
    assert tap.kept == []


def test_a_failed_stream_is_not_kept_and_still_fails():
    tap = Tap(EventReader(), events_of(REPLY))
    results = []
    tap.done.addErrback(results.append)
    tap.stream.done.errback(APIError(502, "gone"))
    assert tap.kept == [] and results[0].check(APIError)


def test_a_cancelled_stream_is_not_kept():
    tap = Tap(EventReader(), events_of(REPLY))
    tap.done.addErrback(lambda f: f.trap(CancelledError))
    tap.done.cancel()
    assert tap.kept == [] and tap.stream.log == ["cancelled"]


def test_a_stopped_stream_is_not_kept_even_if_it_then_ends_well():
    tap = Tap(EventReader(), events_of(REPLY))
    tap.recording.stopProducing()
    tap.end()
    assert tap.kept == []


def test_a_stream_over_the_bound_is_not_kept_and_still_told():
    events = [Started("i"), TextDelta("x" * 6), TextDelta("y" * 5), Finished(END)]
    tap = Tap(EventReader(), events, max_bytes=10)
    tap.end()
    assert tap.kept == [] and tap.got == events


def test_a_stream_at_the_bound_is_kept():
    events = [Started("i"), TextDelta("x" * 6), TextDelta("y" * 4), Finished(END)]
    tap = Tap(EventReader(), events, max_bytes=10)
    tap.end()
    assert [r.text for r in tap.kept] == ["x" * 6 + "y" * 4]


def test_bytes_count_against_the_bound():
    tap = Tap(ChatChunkReader(), chat_chunks(REPLY), max_bytes=100)
    tap.end()
    assert tap.kept == []


def test_a_reader_that_fails_stops_the_recording_not_the_stream():
    tap = Tap(ChatChunkReader(), [b"not json", *chat_chunks(REPLY)])
    tap.end()
    assert tap.kept == [] and tap.got[0] == b"not json"


def test_a_client_that_fails_is_not_recorded_for():
    def broken(item):
        if isinstance(item, Started):
            raise RuntimeError("client gone")

    stream = Stream()
    kept = []
    recorded(stream, EventReader(), 100, kept.append).start(broken)
    with pytest.raises(RuntimeError):
        stream.send(Started("i"))
    stream.send(Finished(END))
    stream.done.callback(None)
    assert kept == []


def test_a_failing_keep_does_not_fail_the_stream():
    def keep(reply):
        raise RuntimeError("store broke")

    stream = Stream()
    results = []
    recorded(stream, EventReader(), 100, keep).start(list().append).addBoth(results.append)
    stream.send(*events_of(REPLY))
    stream.done.callback(None)
    assert results == [None]


# The readers


def test_chat_chunks_are_read_into_the_reply():
    tap = Tap(ChatChunkReader(), chat_chunks(REPLY))
    tap.end()
    expected = Reply("chatcmpl-abc", [Reasoning("hmm"), *REPLY.parts[1:]], TOOL_CALLS,
                     REPLY.usage, None, REPLY.created)
    assert tap.kept == [expected]


def test_a_chat_stream_without_usage_chunk_keeps_the_streams_usage():
    chunks = [c for c in chat_chunks(REPLY) if json.loads(c)["choices"]]
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
             "prompt_tokens_details": {"cached_tokens": 2}}
    tap = Tap(ChatChunkReader(), chunks, stream=Stream(usage))
    tap.end()
    assert tap.kept[0].usage == Usage(9, 4, 2)


def test_a_chat_error_chunk_is_not_kept():
    chunks = [*chat_chunks(REPLY)[:2], b'{"error": {"message": "overloaded"}}']
    tap = Tap(ChatChunkReader(), chunks)
    tap.end()
    assert tap.kept == []


def test_messages_events_are_read_into_the_reply():
    tap = Tap(MessagesReader(), messages_events(REPLY))
    tap.end()
    [kept] = tap.kept
    assert (kept.parts, kept.stop, kept.usage) == (REPLY.parts, REPLY.stop, REPLY.usage)


def test_messages_events_framed_without_type_are_read_by_their_data():
    events = [e.partition(b"\n")[2] for e in messages_events(REPLY)]
    tap = Tap(MessagesReader(), events)
    tap.end()
    assert tap.kept[0].parts == REPLY.parts


def test_a_messages_stream_cut_before_message_stop_is_not_kept():
    tap = Tap(MessagesReader(), messages_events(REPLY)[:-1])
    tap.end()
    assert tap.kept == []


def test_a_messages_error_event_is_not_kept():
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",' \
            b'"message":"Overloaded"}}\n\n'
    tap = Tap(MessagesReader(), [*messages_events(REPLY)[:-1], error,
                                 messages_events(REPLY)[-1]])
    tap.end()
    assert tap.kept == []


def test_a_completed_responses_stream_is_read_from_its_last_event():
    reply = Reply("abc", [Reasoning("hmm"), *REPLY.parts[1:]], TOOL_CALLS, REPLY.usage,
                  None, REPLY.created)
    tap = Tap(ResponsesReader(), responses_events(reply))
    tap.end()
    assert tap.kept == [reply]


@pytest.mark.parametrize("kind", [b"response.incomplete", b"response.failed", b"error"])
def test_a_responses_stream_ending_otherwise_is_not_kept(kind):
    events = [*responses_events(REPLY)[:-1],
              b"event: " + kind + b'\ndata: {"type":"' + kind + b'","response":{}}\n\n']
    tap = Tap(ResponsesReader(), events)
    tap.end()
    assert tap.kept == []


def test_responses_events_other_than_completed_are_not_parsed():
    reader = ResponsesReader()
    assert reader.feed(b"event: response.output_text.delta\ndata: {not json\n\n") == []


def test_a_completed_event_without_a_response_stops_the_recording():
    event = b'event: response.completed\ndata: {"type":"response.completed"}\n\n'
    tap = Tap(ResponsesReader(), [*responses_events(REPLY)[:-1], event])
    tap.end()
    assert tap.kept == []


@pytest.mark.parametrize("item", [b"data: {}", b"{}\n\n", b"event: x\n{}\n\n"])
def test_bytes_not_framed_as_an_event_are_refused(item):
    with pytest.raises(ValueError):
        MessagesReader().feed(item)


def test_a_run_of_deltas_is_added_to_the_reply_at_once(monkeypatch):
    """
    The accumulator copies a part for each delta added to it: fed a long
    answer's deltas one by one, recording would be quadratic.
    """
    fed = []

    class Counting(recording.Accumulator):
        def feed(self, event):
            fed.append(event)
            super().feed(event)

    monkeypatch.setattr(recording, "Accumulator", Counting)
    deltas = [TextDelta("x")] * 100_000
    tap = Tap(EventReader(), [Started("i"), *deltas, Finished(END)], max_bytes=1 << 30)
    tap.end()
    assert len(tap.kept[0].text) == 100_000 and len(fed) == 3


def test_failure_results_are_passed_on_as_they_are():
    tap = Tap(EventReader())
    failure = Failure(APIError(504, "deadline"))
    results = []
    tap.done.addErrback(results.append)
    tap.stream.done.errback(failure)
    assert results == [failure]
