"""
Reading an upstream's server-sent events: the HTML standard's parsing rules
(line ends, the byte order mark, fields, dispatch), the bound on one event,
the relayed stream failing when an upstream goes past it, the end of each
read told (for the front to write a read's events together).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from llmedge.providers.events import MAX_EVENT, SSEReader, UpstreamStream
from llmedge.providers.openai_stream import ChunkRelay

BOM = b"\xef\xbb\xbf"


class Transport:
    def __init__(self):
        self.stopped = 0

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        self.stopped += 1


class Response:
    def __init__(self):
        self.transport = Transport()
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.transport)


def reader(max_event: int = MAX_EVENT):
    seen: list[tuple[bytes | None, bytes]] = []
    overflows: list[None] = []
    protocol = SSEReader(lambda event, data: seen.append((event, data)), max_event,
                         lambda: overflows.append(None))
    protocol.makeConnection(Transport())
    return protocol, seen, overflows


def events_of(*pieces: bytes) -> list[tuple[bytes | None, bytes]]:
    protocol, seen, _ = reader()
    for piece in pieces:
        protocol.dataReceived(piece)
    return seen


# -- the parsing rules -------------------------------------------------------------


def test_events_are_split_on_blank_lines():
    assert events_of(b"data: a\n\ndata: b\n\n") == [(None, b"a"), (None, b"b")]


def test_lines_may_end_with_crlf_lf_or_a_lone_cr():
    assert events_of(b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\r\n\n") == [
        (None, b"a"), (None, b"b"), (None, b"c"), (None, b"d")]


def test_a_cr_ending_one_read_and_an_lf_starting_the_next_are_one_line_end():
    assert events_of(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [(None, b"a\nb")]


def test_a_cr_then_cr_lf_are_two_line_ends():
    assert events_of(b"data: a\r\r\n") == [(None, b"a")]


def test_multi_line_data_is_joined_with_line_feeds():
    assert events_of(b"data: a\ndata: b\n\n") == [(None, b"a\nb")]


def test_a_leading_byte_order_mark_is_skipped():
    assert events_of(BOM + b"data: a\n\n") == [(None, b"a")]


def test_a_byte_order_mark_split_over_reads_is_skipped():
    assert events_of(BOM[:1], BOM[1:2], BOM[2:] + b"data: a\n\n") == [(None, b"a")]


def test_only_one_byte_order_mark_is_skipped():
    # The second one is part of the field name, which is then unknown.
    assert events_of(BOM + BOM + b"data: a\n\ndata: b\n\n") == [(None, b"b")]


def test_bytes_only_beginning_like_a_byte_order_mark_stay_in_the_first_line():
    # Its field name is then "\xef\xbbdata", unknown: no event.
    assert events_of(b"\xef", b"\xbb", b"data: a\n\ndata: b\n\n") == [(None, b"b")]


def test_data_without_a_colon_is_an_empty_data_line():
    assert events_of(b"data\n\ndata\ndata: x\n\n") == [(None, b""), (None, b"\nx")]


def test_only_one_space_after_the_colon_is_removed():
    assert events_of(b"data:  a\n\ndata:b\n\n") == [(None, b" a"), (None, b"b")]


def test_event_sets_the_type_of_its_event_only():
    assert events_of(b"event: ping\ndata: {}\n\ndata: 1\n\n") == [
        (b"ping", b"{}"), (None, b"1")]


def test_an_empty_type_is_no_type():
    assert events_of(b"event:\ndata: 1\n\n") == [(None, b"1")]


def test_an_event_without_data_is_not_dispatched_and_resets_the_type():
    assert events_of(b"event: ping\n\ndata: 1\n\n") == [(None, b"1")]


def test_comments_id_retry_and_unknown_fields_are_ignored():
    stream = b": keep-alive\nid: 7\nretry: 10\nfoo: bar\ndata: 1\n:x\n\n"
    assert events_of(stream) == [(None, b"1")]


def test_an_event_not_ended_by_a_blank_line_is_dropped():
    protocol, seen, _ = reader()
    protocol.dataReceived(b"data: a\n\ndata: b\n")
    protocol.connectionLost(Failure(ResponseDone()))
    assert seen == [(None, b"a")]
    assert protocol.ended.called


def test_a_line_trickled_in_small_reads_is_joined_whole():
    line = b'{"x":"' + b"y" * 100_000 + b'"}'
    pieces = [b"data: "] + [line[i:i + 7] for i in range(0, len(line), 7)] + [b"\n\n"]
    assert events_of(*pieces) == [(None, line)]


# -- the same events however they are framed and cut ----------------------------

#: A field value: any bytes but line ends.
values = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
line_ends = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def framed_streams(draw) -> tuple[bytes, list[tuple[bytes | None, bytes]]]:
    """
    A stream of events with comments, ids and typed events without data
    among them, each line ended any way, and what it should be read as.
    """
    out: list[bytes] = [BOM] if draw(st.booleans()) else []
    expected = []
    previous_end = b""

    def line(text: bytes) -> None:
        nonlocal previous_end
        end = draw(line_ends)
        if not text and previous_end == b"\r" and end == b"\n":
            end = b"\r\n"  # a lone LF here would finish the previous CR
        out.extend((text, end))
        previous_end = end

    def field(name: bytes, value: bytes) -> None:
        space = value[:1] == b" " or draw(st.booleans())
        line(name + b":" + (b" " if space else b"") + value)

    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        noise = draw(st.sampled_from(["", "comment", "id", "typed nothing"]))
        if noise == "comment":
            line(b":" + draw(values))
        elif noise == "id":
            field(b"id", draw(values))
        elif noise == "typed nothing":
            field(b"event", draw(values))
            line(b"")
        kind = draw(values)
        if kind or draw(st.booleans()):
            field(b"event", kind)
        data = draw(st.lists(values, min_size=1, max_size=4))
        for value in data:
            if not value and draw(st.booleans()):
                line(b"data")
            else:
                field(b"data", value)
        line(b"")
        expected.append((kind or None, b"\n".join(data)))
    if draw(st.booleans()):
        field(b"data", draw(values))  # an unfinished event, dropped
    return b"".join(out), expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def read_to_end(pieces: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    protocol, seen, _ = reader()
    for piece in pieces:
        protocol.dataReceived(piece)
    protocol.connectionLost(Failure(ResponseDone()))
    return seen


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(framed_streams(), st.lists(st.integers(min_value=0), max_size=20))
def test_events_are_the_same_however_framed_and_split_into_reads(stream, cuts):
    data, expected = stream
    assert read_to_end([data]) == expected
    assert read_to_end(split(data, cuts)) == expected


# -- the bound on one event --------------------------------------------------------


def test_the_default_bound_is_one_mebibyte():
    assert SSEReader(lambda event, data: None).max_event == MAX_EVENT == 1024 * 1024


def test_events_under_the_bound_pass_however_many():
    protocol, seen, overflows = reader(max_event=100)
    for _ in range(1000):
        protocol.dataReceived(b"data: " + b"x" * 90 + b"\n\n")
    assert len(seen) == 1000 and overflows == []


def test_an_event_over_the_bound_stops_the_reader_and_its_transport():
    protocol, seen, overflows = reader(max_event=100)
    protocol.dataReceived(b"data: " + b"x" * 60 + b"\ndata: " + b"x" * 60 + b"\n")
    protocol.dataReceived(b"\ndata: 1\n\n")
    assert (seen, overflows, protocol.transport.stopped) == ([], [None], 1)


def test_the_line_being_read_counts_toward_the_bound():
    protocol, _, overflows = reader(max_event=100)
    protocol.dataReceived(b"data: " + b"x" * 60 + b"\ndata: ")
    protocol.dataReceived(b"x" * 30)
    assert overflows == []
    protocol.dataReceived(b"x" * 30)
    assert overflows == [None]


def test_a_comment_line_is_bounded_while_it_is_read():
    protocol, _, overflows = reader(max_event=100)
    for _ in range(20):
        protocol.dataReceived(b": " + b"x" * 10)
    assert overflows == [None]


def test_comments_and_ids_do_not_accumulate():
    protocol, seen, overflows = reader(max_event=100)
    for _ in range(1000):
        protocol.dataReceived(b": " + b"x" * 80 + b"\nid: " + b"1" * 80 + b"\n")
    protocol.dataReceived(b"data: 1\n\n")
    assert (seen, overflows) == ([(None, b"1")], [])


def test_empty_data_lines_count_a_byte_each():
    protocol, _, overflows = reader(max_event=100)
    protocol.dataReceived(b"data\n" * 101)
    assert overflows == [None]


class UpstreamStreamBoundTests(SynchronousTestCase):
    def test_an_event_over_max_event_fails_the_stream_as_too_large(self):
        response = Response()
        done = UpstreamStream("up", response, ChunkRelay(False), max_event=64).start(
            lambda data: None)
        response.protocol.dataReceived(b'data: {"x":"' + b"y" * 64)
        self.assertEqual(response.transport.stopped, 1)
        response.protocol.connectionLost(Failure(ResponseDone()))
        error = self.failureResultOf(done).value
        self.assertEqual(
            (error.status, error.code, error.message, error.retryable),
            (502, "upstream_response_too_large",
             "Provider 'up' sent a stream event over 64 bytes.", False))

    def test_events_after_the_overflow_are_not_relayed(self):
        response = Response()
        received = []
        UpstreamStream("up", response, ChunkRelay(False), max_event=64).start(received.append)
        response.protocol.dataReceived(b"data: " + b"1" * 70 + b"\n\ndata: {}\n\n")
        self.assertEqual(received, [])


# -- the end of each read ------------------------------------------------------------


def told_reads(*pieces: bytes, max_event: int = MAX_EVENT) -> list:
    told: list = []
    protocol = SSEReader(lambda event, data: told.append(data), max_event,
                         lambda: told.append("too large"), lambda: told.append("read"))
    protocol.makeConnection(Transport())
    for piece in pieces:
        protocol.dataReceived(piece)
    return told


def test_the_end_of_each_read_is_told_after_its_events():
    assert told_reads(b"data: a\n\ndata: b\n\n", b"data: c\n\n") == [
        b"a", b"b", "read", b"c", "read"]


def test_the_end_of_a_read_without_a_whole_event_is_told_too():
    assert told_reads(b"data: a", b"\n\n") == ["read", b"a", "read"]


def test_no_read_is_told_after_the_reader_stopped_at_the_bound():
    assert told_reads(b"data: a\n\ndata: " + b"x" * 100, b"data: b\n\n", max_event=50) == [
        b"a", "too large", "read"]


class UpstreamStreamBatchTests(SynchronousTestCase):
    def test_flush_is_called_after_the_events_of_each_read(self):
        response = Response()
        told: list = []
        UpstreamStream("up", response, ChunkRelay(False)).start(
            told.append, lambda: told.append("flush"))
        response.protocol.dataReceived(b"data: {}\n\ndata: ")
        response.protocol.dataReceived(b'{"a":1}\n\ndata: {"b":2}\n\n')
        self.assertEqual(told, [b"{}", "flush", b'{"a":1}', b'{"b":2}', "flush"])

    def test_without_flush_the_events_are_delivered_alone(self):
        response = Response()
        received: list = []
        UpstreamStream("up", response, ChunkRelay(False)).start(received.append)
        response.protocol.dataReceived(b"data: {}\n\ndata: {}\n\n")
        self.assertEqual(received, [b"{}", b"{}"])
