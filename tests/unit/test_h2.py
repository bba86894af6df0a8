"""
HTTP/2 with HTTP/1.1's protections (L{llmedge.web.h2}): a real L{EdgeSite}
behind the real L{EdgeConnection}, which negotiates C{h2} on an in-memory
transport, driven by the h2 library's client (or by raw frames where that
client will not misbehave), time by the harness's clock.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import twisted
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.web._http2 import H2Connection

from llmedge.web.channel import EdgeConnection
from llmedge.web.h2 import (
    CLOSED_STREAMS_REMEMBERED,
    GLITCH_BURST,
    GLITCH_RATE,
    SWITCH_INSIDES,
    EdgeH2Connection,
)
from llmedge.web.h2_frames import (
    MAX_HEADER_BLOCK_BYTES,
    MAX_HEADER_BLOCK_FRAMES,
    MAX_HEADER_LIST_SIZE,
    MAX_HEADERS,
    HeaderBlocks,
)
from llmedge.web.request import EdgeRequest, LINGER_SECONDS
from tests.unit.support import Harness

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CHAT = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "x"}]}).encode()
CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture
def edge():
    return Harness({
        "SERVER_HEADER_TIMEOUT_SECONDS": "5",
        "SERVER_BODY_TIMEOUT_SECONDS": "7",
        "SERVER_HTTP2_MAX_CONCURRENT_STREAMS": "3",
    })


def never_answering(edge) -> list:
    """
    Make the mock provider never answer; return the list its canceller
    appends to.
    """
    cancelled: list = []
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: Deferred(cancelled.append)
    return cancelled


class BufferedTransport(StringTransport):
    """
    A transport that, as a socket's does, tells its producer to pause once
    what it holds unsent passes C{mark} bytes (the client does not read).
    """

    mark = 65536

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.io.getvalue()) > self.mark and self.producer is not None:
            self.producer.pauseProducing()


def h2_connection(edge, transport: StringTransport | None = None):
    """
    A client connection to C{edge}'s site that negotiated C{h2}.
    """
    protocol = edge.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport() if transport is None else transport
    transport.negotiatedProtocol = b"h2"
    protocol.makeConnection(transport)
    return protocol, transport


@dataclass
class Answer:
    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False
    reset: int | None = None

    def error(self) -> dict:
        assert self.headers[b"content-type"] == b"application/json"
        assert self.headers[b"x-request-id"]
        error = json.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return error


class Client:
    """
    The h2 library's client on an in-memory connection to the site.
    """

    def __init__(self, edge, transport: StringTransport | None = None) -> None:
        self.edge = edge
        self.protocol, self.transport = h2_connection(edge, transport)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.answers: dict[int, Answer] = defaultdict(Answer)
        self.events: list = []
        self.send()

    @property
    def server(self) -> EdgeH2Connection:
        return self.protocol._channel

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.protocol.dataReceived(data)

    def receive(self) -> list:
        """
        Read what the server wrote (running its send loop), answer it.
        """
        events = []
        for _ in range(100):
            self.edge.reactor.advance(0)
            data = self.transport.value()
            if not data:
                break
            self.transport.clear()
            events.extend(self.h2.receive_data(data))
            self.send()
        for event in events:
            self._note(event)
        self.events.extend(events)
        return events

    def _note(self, event) -> None:
        answer = self.answers[getattr(event, "stream_id", 0)]
        if isinstance(event, h2.events.ResponseReceived):
            headers = dict(event.headers)
            answer.status = int(headers[b":status"])
            answer.headers = headers
        elif isinstance(event, h2.events.DataReceived):
            answer.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            answer.ended = True
        elif isinstance(event, h2.events.StreamReset):
            answer.reset = event.error_code

    def request(self, method: bytes = b"GET", path: bytes = b"/health", body: bytes | None = None,
                headers=(), end: bool = True, send: bool = True) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        fields = [(b":method", method), (b":path", path), (b":scheme", b"https"),
                  (b":authority", b"localhost"), *headers]
        if body is not None:
            fields += [(b"content-type", b"application/json"),
                       (b"content-length", b"%d" % len(body))]
        self.h2.send_headers(stream_id, fields, end_stream=end and body is None)
        for at in range(0, len(body or b""), 16384):
            self.h2.send_data(stream_id, body[at:at + 16384],
                              end_stream=end and at + 16384 >= len(body))
        if send:
            self.send()
        return stream_id

    def chat(self, **kwargs) -> int:
        return self.request(b"POST", b"/v1/chat/completions", CHAT, **kwargs)

    def goaway(self):
        return next((e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)),
                    None)


class RawClient:
    """
    A client writing frames by hand (hyperframe, hpack), for what the h2
    library will not send; reads the server's frames the same way.
    """

    def __init__(self, edge, transport: StringTransport | None = None) -> None:
        self.edge = edge
        self.protocol, self.transport = h2_connection(edge, transport)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.send(PREFACE + SettingsFrame(0).serialize())

    @property
    def server(self) -> EdgeH2Connection:
        return self.protocol._channel

    def send(self, *frames: bytes | Frame) -> None:
        self.protocol.dataReceived(b"".join(
            frame if isinstance(frame, bytes) else frame.serialize() for frame in frames))

    def headers(self, stream_id: int, fields=(), flags=("END_HEADERS", "END_STREAM")) -> HeadersFrame:
        block = self.encoder.encode([
            (b":method", b"GET"), (b":path", b"/health"), (b":scheme", b"https"),
            (b":authority", b"localhost"), *fields])
        return HeadersFrame(stream_id, data=block, flags=flags)

    def frames(self) -> list[Frame]:
        self.edge.reactor.advance(0)
        data, frames = self.transport.value(), []
        self.transport.clear()
        while len(data) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(data[:9]))
            frame.parse_body(memoryview(data[9:9 + length]))
            data = data[9 + length:]
            if isinstance(frame, HeadersFrame):
                frame.fields = dict(self.decoder.decode(frame.data, raw=True))
            frames.append(frame)
        return frames


def goaways(frames) -> list[GoAwayFrame]:
    return [frame for frame in frames if isinstance(frame, GoAwayFrame)]


# -- the connection and its settings ---------------------------------------------


def test_tls_h2_connection_is_served_by_edge_h2_connection(edge):
    client = Client(edge)
    assert type(client.server) is EdgeH2Connection
    stream = client.request()
    client.receive()
    assert client.answers[stream].status == 200 and client.answers[stream].ended


def test_settings_advertise_the_stream_cap_and_header_list_size(edge):
    client = Client(edge)
    client.receive()
    changed = next(e for e in client.events if isinstance(e, h2.events.RemoteSettingsChanged))
    settings = {code: change.new_value for code, change in changed.changed_settings.items()}
    assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3
    assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == MAX_HEADER_LIST_SIZE


def test_http1_channel_stops_its_timers_when_h2_takes_over(edge):
    client = Client(edge)
    client.receive()
    edge.reactor.advance(6)  # past the header timeout an HTTP/1.1 channel would set
    assert not client.transport.disconnecting
    assert client.goaway() is None


# -- header bounds ---------------------------------------------------------------


def test_header_list_over_the_size_bound_gets_431_json(edge):
    client = Client(edge)
    client.receive()
    stream = client.request(headers=[(b"x-big", b"a" * MAX_HEADER_LIST_SIZE)])
    client.receive()
    answer = client.answers[stream]
    assert answer.status == 431 and answer.ended
    assert answer.error()["code"] == "headers_too_large"


def test_more_headers_than_the_count_bound_gets_431_json(edge):
    client = Client(edge)
    client.receive()
    stream = client.request(headers=[(b"x-h", b"%d" % i) for i in range(MAX_HEADERS + 1)])
    client.receive()
    assert client.answers[stream].status == 431
    assert client.answers[stream].error()["code"] == "headers_too_large"


def test_as_many_headers_as_the_count_bound_are_served(edge):
    client = Client(edge)
    client.receive()
    stream = client.request(headers=[(b"x-h", b"%d" % i) for i in range(MAX_HEADERS)])
    client.receive()
    assert client.answers[stream].status == 200


def test_431_ends_only_its_stream(edge):
    client = Client(edge)
    client.receive()
    client.request(headers=[(b"x-big", b"a" * MAX_HEADER_LIST_SIZE)], end=False)
    following = client.request()
    client.receive()
    assert client.answers[following].status == 200
    assert client.goaway() is None


def test_431_resets_a_stream_whose_body_is_still_coming(edge):
    client = Client(edge)
    client.receive()
    stream = client.request(b"POST", b"/v1/chat/completions",
                            headers=[(b"x-big", b"a" * MAX_HEADER_LIST_SIZE)], end=False)
    client.receive()
    assert client.answers[stream].status == 431
    assert client.answers[stream].reset == h2.errors.ErrorCodes.NO_ERROR


def test_continuation_flood_gets_goaway_at_the_frame_bound(edge):
    raw = RawClient(edge)
    raw.frames()
    raw.send(raw.headers(1, flags=()))
    raw.send(*[ContinuationFrame(1, data=b"") for _ in range(MAX_HEADER_BLOCK_FRAMES - 1)])
    assert goaways(raw.frames()) == []
    raw.send(ContinuationFrame(1, data=b""))
    [goaway] = goaways(raw.frames())
    assert goaway.error_code == CALM
    assert raw.transport.disconnecting


def test_header_block_is_refused_at_its_byte_bound_before_its_bytes_arrive(edge):
    raw = RawClient(edge)
    raw.frames()
    first = raw.headers(1, flags=())
    raw.send(first)
    chunk = b"\x00" * 16384
    sent = len(first.data)
    while sent + len(chunk) <= MAX_HEADER_BLOCK_BYTES:
        raw.send(ContinuationFrame(1, data=chunk))
        sent += len(chunk)
    assert goaways(raw.frames()) == []
    # the frame header alone, announcing a payload that would cross the bound
    raw.send(ContinuationFrame(1, data=chunk).serialize()[:9])
    [goaway] = goaways(raw.frames())
    assert goaway.error_code == CALM


def test_hpack_bomb_gets_goaway_from_h2(edge):
    """
    A small block that inflates through HPACK's dynamic table past what
    hpack decodes (h2's own bound, which llmedge relies on): the
    connection is ended, the block cannot be answered.
    """
    raw = RawClient(edge)
    raw.frames()
    raw.send(raw.headers(1, [(b"x-bomb", b"a" * 4000)]))
    raw.frames()
    raw.send(raw.headers(3, [(b"x-bomb", b"a" * 4000)] * 20))  # 20 bytes: 80 KB decoded
    [goaway] = goaways(raw.frames())
    assert goaway.error_code == CALM


# -- timeouts --------------------------------------------------------------------


def test_header_block_not_whole_within_the_header_timeout_gets_goaway(edge):
    raw = RawClient(edge)
    raw.frames()
    raw.send(raw.headers(1, flags=("END_STREAM",)))  # no END_HEADERS: more should follow
    edge.reactor.advance(4.9)
    assert goaways(raw.frames()) == []
    edge.reactor.advance(0.1)
    [goaway] = goaways(raw.frames())
    assert goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    assert b"did not arrive in time" in goaway.additional_data
    assert raw.transport.disconnecting


def test_header_frame_dribbled_byte_by_byte_is_timed_from_its_first_byte(edge):
    raw = RawClient(edge)
    raw.frames()
    frame = raw.headers(1, [(b"x-pad", b"a" * 200)]).serialize()
    for byte in frame[:60]:  # each byte well within Twisted's idle timeout
        raw.send(bytes([byte]))
        edge.reactor.advance(0.1)
    assert goaways(raw.frames())


def test_header_block_whole_in_time_leaves_no_header_timer(edge):
    raw = RawClient(edge)
    raw.frames()
    raw.send(raw.headers(1, flags=("END_STREAM",)))
    raw.send(ContinuationFrame(1, data=b"", flags=["END_HEADERS"]))
    edge.reactor.advance(6)
    frames = raw.frames()
    assert goaways(frames) == []
    assert [f.fields[b":status"] for f in frames if isinstance(f, HeadersFrame)] == [b"200"]


def test_body_not_whole_within_the_body_timeout_gets_408(edge):
    client = Client(edge)
    client.receive()
    stream = client.chat(end=False)
    edge.reactor.advance(6.9)
    client.receive()
    assert client.answers[stream].status is None
    edge.reactor.advance(0.1)
    client.receive()
    answer = client.answers[stream]
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert answer.reset == h2.errors.ErrorCodes.NO_ERROR
    assert client.goaway() is None


def test_body_whole_in_time_leaves_no_body_timer(edge):
    client = Client(edge)
    client.receive()
    stream = client.chat(end=False)
    edge.reactor.advance(3)
    client.h2.end_stream(stream)
    client.send()
    client.receive()
    assert client.answers[stream].status == 200
    assert client.server._body_timers == {}


def test_body_timeout_after_a_413_resets_the_stream(edge):
    client = Client(edge)
    client.receive()
    stream = client.h2.get_next_available_stream_id()
    client.h2.send_headers(stream, [
        (b":method", b"POST"), (b":path", b"/v1/chat/completions"), (b":scheme", b"https"),
        (b":authority", b"localhost"), (b"content-length", b"999999999")])
    client.send()
    client.receive()
    assert client.answers[stream].status == 413
    edge.reactor.advance(7)
    client.receive()
    assert client.answers[stream].reset == h2.errors.ErrorCodes.NO_ERROR


# -- concurrent streams ----------------------------------------------------------


def test_streams_past_the_cap_are_refused_before_the_settings_are_acknowledged(edge):
    cancelled = never_answering(edge)
    client = Client(edge)  # has not read the server's SETTINGS: knows no cap
    streams = [client.chat() for _ in range(5)]
    client.receive()
    assert [client.answers[s].reset for s in streams] == [
        None, None, None, h2.errors.ErrorCodes.REFUSED_STREAM,
        h2.errors.ErrorCodes.REFUSED_STREAM]
    assert len(client.server.streams) == 3
    assert cancelled == []


def test_stream_slot_freed_by_an_answer_is_used_again(edge):
    client = Client(edge)
    client.receive()
    for _ in range(10):
        stream = client.request()
        client.receive()
        assert client.answers[stream].status == 200


def test_data_of_a_refused_stream_is_dropped_and_its_window_handed_back(edge):
    never_answering(edge)
    client = Client(edge)
    for _ in range(3):
        client.chat()
    refused = client.request(b"POST", b"/v1/chat/completions", b"x" * 60000)
    client.receive()
    assert client.answers[refused].reset == h2.errors.ErrorCodes.REFUSED_STREAM
    # h2 hands the window back in steps of half of it; unacknowledged, 5 KB would be left
    assert client.h2.outbound_flow_control_window > 65535 // 2


def test_h2_remembers_a_bounded_number_of_closed_streams(edge, monkeypatch):
    assert Client(edge).server.conn.MAX_CLOSED_STREAMS == CLOSED_STREAMS_REMEMBERED
    monkeypatch.setattr(type(Client(edge).server.conn), "MAX_CLOSED_STREAMS", 10)
    client = Client(edge)
    client.receive()
    for _ in range(10):
        streams = [client.request() for _ in range(3)]
        client.receive()
        assert [client.answers[s].status for s in streams] == [200] * 3
    assert len(client.server.conn._closed_streams) == 10, (
        "h2 no longer bounds what it remembers of closed streams by MAX_CLOSED_STREAMS")


# -- resets ----------------------------------------------------------------------


def test_stream_reset_by_the_client_cancels_its_work(edge):
    cancelled = never_answering(edge)
    client = Client(edge)
    client.receive()
    stream = client.chat()
    assert cancelled == []
    client.h2.reset_stream(stream)
    client.send()
    assert len(cancelled) == 1
    assert client.server.streams == {}


def test_stream_reset_mid_answer_stops_the_answer(toml):
    edge = Harness(config_path=toml('[providers.mock]\nkind = "mock"\nstream_interval = 1\n'))
    client = Client(edge)
    client.receive()
    idle = set(edge.reactor.getDelayedCalls())
    body = json.dumps({"model": "mock", "stream": True,
                       "messages": [{"role": "user", "content": "a b c d e f"}]}).encode()
    stream = client.request(b"POST", b"/v1/chat/completions", body)
    edge.reactor.advance(1)
    client.receive()
    assert client.answers[stream].status == 200 and not client.answers[stream].ended
    assert [c for c in edge.reactor.getDelayedCalls() if c not in idle]  # the pacing
    client.h2.reset_stream(stream)
    client.send()
    client.receive()
    assert [c for c in edge.reactor.getDelayedCalls() if c not in idle] == []
    assert client.server.streams == {}


def test_rapid_reset_gets_goaway_enhance_your_calm_past_the_burst(edge):
    cancelled = never_answering(edge)
    client = Client(edge)
    client.receive()
    for _ in range(GLITCH_BURST):
        client.h2.reset_stream(client.chat(send=False))
    client.send()
    client.receive()
    assert client.goaway() is None
    client.h2.reset_stream(client.chat(send=False))
    client.send()
    client.receive()
    assert client.goaway().error_code == CALM
    assert len(cancelled) == GLITCH_BURST + 1  # every stream's work was cancelled
    assert client.transport.disconnecting


def test_resets_within_the_rate_go_on(edge):
    never_answering(edge)
    client = Client(edge)
    client.receive()
    for _ in range(3 * GLITCH_BURST):
        client.h2.reset_stream(client.chat())
        client.send()
        edge.reactor.advance(1 / GLITCH_RATE)
    client.receive()
    assert client.goaway() is None


def test_refused_streams_count_as_resets(edge):
    never_answering(edge)
    client = Client(edge)
    for _ in range(3 + GLITCH_BURST + 1):
        client.chat(send=False)
    client.send()
    client.receive()
    assert client.goaway().error_code == CALM


def test_calm_goaway_drops_a_client_that_does_not_read_after_lingering(edge):
    client = Client(edge)
    client.receive()
    for _ in range(GLITCH_BURST + 1):
        client.h2.reset_stream(client.request(send=False))
    client.send()
    edge.reactor.advance(LINGER_SECONDS)
    assert client.transport.disconnected or client.transport.disconnecting
    assert client.transport.producer is None  # unregistered, so TLS can close


# -- a client that does not read --------------------------------------------------


PINGS = PingFrame(0, opaque_data=b"12345678").serialize() * 1000


def flood_until_paused(raw: RawClient) -> int:
    """
    Send PINGs, never reading the answers, until the server stops reading.
    """
    for sent in range(1, 100):
        raw.send(PINGS)
        if raw.transport.producerState == "paused":
            return sent
    raise AssertionError("the server never stopped reading")


def test_ping_flood_without_reading_stops_reading(edge):
    raw = RawClient(edge, BufferedTransport())
    flood_until_paused(raw)
    written = len(raw.transport.value())
    for _ in range(20):  # what the transport delivers still, from its last read
        raw.send(PINGS)
    assert len(raw.transport.value()) == written
    assert written < BufferedTransport.mark + len(PINGS)


def test_reading_resumes_once_the_client_has_read(edge):
    raw = RawClient(edge, BufferedTransport())
    flood_until_paused(raw)
    raw.send(PINGS)  # held
    raw.frames()  # the client reads it all
    raw.transport.producer.resumeProducing()
    assert raw.transport.producerState == "producing"
    assert len(raw.frames()) == 1000  # the held PINGs, answered


def test_an_http2_connection_not_read_is_counted_until_its_client_reads(edge):
    unread = lambda: edge.service.metrics.registry.get_sample_value(  # noqa: E731
        "llmedge_unread_connections")
    raw = RawClient(edge, BufferedTransport())
    flood_until_paused(raw)
    assert unread() == 1
    raw.frames()
    raw.transport.producer.resumeProducing()
    assert unread() == 0


def test_priority_frames_naming_many_streams_are_ignored(edge):
    raw = RawClient(edge)
    raw.frames()
    raw.send(*[PriorityFrame(i, depends_on=0, stream_weight=16) for i in range(3, 5000, 2)])
    raw.send(raw.headers(5001))
    frames = raw.frames()
    assert [f.fields[b":status"] for f in frames if isinstance(f, HeadersFrame)] == [b"200"]


# -- the parts -------------------------------------------------------------------


def test_header_blocks_are_followed_across_any_split():
    frames = (PREFACE + DataFrame(1, data=b"x" * 100).serialize()
              + HeadersFrame(3, data=b"y" * 50).serialize()
              + ContinuationFrame(3, data=b"z" * 10, flags=["END_HEADERS"]).serialize())
    seen = []
    blocks = HeaderBlocks()
    for byte in frames:
        assert blocks.feed(bytes([byte]))
        seen.append(blocks.open)
    opened = len(PREFACE) + 109 + 9  # the HEADERS frame's header is whole
    assert seen.index(True) == opened - 1
    assert seen[-2] is True and seen[-1] is False


# -- Twisted's insides relied on (see EdgeH2Connection.TWISTED_INSIDES) ----------


@pytest.mark.parametrize("name", EdgeH2Connection.TWISTED_INSIDES)
def test_twisted_h2_connection_still_has_what_llmedge_relies_on(name):
    assert callable(getattr(H2Connection, name, None)), (
        f"Twisted {twisted.__version__}'s H2Connection has no {name}: "
        f"EdgeH2Connection relies on it (see EdgeH2Connection.TWISTED_INSIDES)")


@pytest.mark.parametrize("name", SWITCH_INSIDES)
def test_twisted_generic_channel_still_has_what_switch_to_h2_relies_on(edge, name):
    protocol = edge.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(StringTransport())
    assert hasattr(protocol, name), (
        f"Twisted {twisted.__version__}'s _GenericHTTPChannelProtocol has no {name}: "
        f"llmedge.web.h2.switch_to_h2 relies on it")
    assert isinstance(protocol, EdgeConnection)
    assert hasattr(protocol._channel, "_networkProducer"), (
        "Twisted's HTTPChannel has no _networkProducer: switch_to_h2 relies on it")


def test_twisted_hands_each_h2_event_to_the_method_llmedge_overrides(edge):
    seen = []

    class Spy(EdgeH2Connection):
        def _requestReceived(self, event):
            seen.append("received")
            super()._requestReceived(event)

        def _requestDataReceived(self, event):
            seen.append("data")
            super()._requestDataReceived(event)

        def _requestEnded(self, event):
            seen.append("ended")
            super()._requestEnded(event)

        def _requestAborted(self, event):
            seen.append("aborted")
            super()._requestAborted(event)

        def _handlePriorityUpdate(self, event):
            seen.append("priority")

    spy = Spy(edge.reactor)
    spy.site = edge.site
    spy.requestFactory = edge.site.requestFactory
    spy.makeConnection(StringTransport())
    raw = Encoder()
    block = raw.encode([(b":method", b"POST"), (b":path", b"/health"), (b":scheme", b"https"),
                        (b":authority", b"t")])
    spy.dataReceived(PREFACE + SettingsFrame(0).serialize()
                     + HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize()
                     + DataFrame(1, data=b"x").serialize()
                     + PriorityFrame(1, depends_on=0, stream_weight=16).serialize())
    assert spy.streams[1]._request.__class__ is EdgeRequest, (
        "Twisted's H2Stream no longer keeps its request as _request")
    spy.dataReceived(DataFrame(1, data=b"", flags=["END_STREAM"]).serialize()
                     + HeadersFrame(3, data=raw.encode([(b":method", b"GET"), (b":path", b"/"),
                                                        (b":scheme", b"https"),
                                                        (b":authority", b"t")]),
                                    flags=["END_HEADERS"]).serialize()
                     + RstStreamFrame(3).serialize())
    assert seen == ["received", "data", "priority", "data", "ended", "received", "aborted"], (
        f"Twisted {twisted.__version__}'s H2Connection.dataReceived no longer hands h2 events "
        f"to the methods EdgeH2Connection overrides")
