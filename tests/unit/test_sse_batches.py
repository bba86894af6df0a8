"""
Specification of how the SSE relay (llmedge.web.sse) writes a stream: the
events of one upstream read leave in one write, the stream's first event at
once and alone, an event read alone at once and without a timer, a stream
that knows no batches an event a write; a batch is bounded, a stream that
ends amid a batch has it written first, and nothing is written once the
client is gone. Through the whole service (routing's L{Tracked}, the
cache's tap) over an in-memory transport that counts writes, on a fake
clock.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from llmedge.cache.recording import ChatChunkReader, recorded
from llmedge.errors import APIError
from llmedge.providers.base import IBatchedStream, IEventStream
from llmedge.providers.events import UpstreamStream
from llmedge.providers.openai_stream import ChunkRelay
from llmedge.routing.tracked import Tracked
from llmedge.web.sse import MAX_BATCH
from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


class CountingTransport(StringTransport):
    """
    A transport that keeps each write apart (a C{writeSequence} is one).
    """

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def events(self) -> list[list[bytes]]:
        """
        The C{data:} payloads of each write that carried any, write by write.
        """
        return [[line[len(b"data: "):] for line in write.split(b"\n")
                 if line.startswith(b"data: ")] for write in self.writes if b"data: " in write]


class Upstream:
    """
    An upstream response whose body the test sends read by read; it is
    its body's transport too.
    """

    def __init__(self) -> None:
        self.protocol = None
        self.paused = self.stopped = False

    def deliverBody(self, protocol) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    def read(self, *events: bytes) -> None:
        self.protocol.dataReceived(b"".join(b"data: " + e + b"\n\n" for e in events))

    def end(self) -> None:
        self.read(b"[DONE]")
        self.protocol.connectionLost(Failure(ResponseDone()))

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


def numbered(*ns: int) -> list[bytes]:
    return [b'{"n":%d}' % n for n in ns]


@pytest.fixture
def edge():
    return Harness()


def streaming(edge, stream, body=CHAT):
    """
    A client connection asking for a stream the provider answers with
    C{stream}.
    """
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: succeed(stream)
    transport = CountingTransport()
    connection = edge.connect(transport)
    connection.send(raw_request("POST", "/v1/chat/completions", body))
    return connection, transport


def upstream_stream(edge, body=CHAT):
    upstream = Upstream()
    connection, transport = streaming(
        edge, UpstreamStream("up", upstream, ChunkRelay(False)), body)
    return upstream, connection, transport


# -- the events of one read --------------------------------------------------------


def test_an_upstream_stream_says_where_its_batches_end():
    assert IBatchedStream.providedBy(UpstreamStream("up", Upstream(), ChunkRelay(False)))


def test_the_first_event_leaves_alone_and_the_rest_of_its_read_together(edge):
    upstream, _, transport = upstream_stream(edge)
    upstream.read(*numbered(0, 1, 2, 3))
    assert transport.events() == [numbered(0), numbered(1, 2, 3)]


def test_the_events_of_one_read_leave_in_one_write(edge):
    upstream, _, transport = upstream_stream(edge)
    upstream.read(*numbered(0))
    upstream.read(*numbered(1, 2, 3, 4, 5))
    upstream.read(*numbered(6, 7))
    assert transport.events() == [numbered(0), numbered(1, 2, 3, 4, 5), numbered(6, 7)]


def test_an_event_read_alone_is_written_at_once_without_a_timer(edge):
    upstream, _, transport = upstream_stream(edge)
    upstream.read(*numbered(0))
    timers = set(edge.reactor.getDelayedCalls())
    upstream.read(*numbered(1))
    assert transport.events()[-1] == numbered(1)
    assert set(edge.reactor.getDelayedCalls()) == timers


def test_a_read_without_a_whole_event_writes_nothing(edge):
    upstream, _, transport = upstream_stream(edge)
    upstream.read(*numbered(0))
    written = len(transport.writes)
    upstream.protocol.dataReceived(b'data: {"n":1}\n')
    assert len(transport.writes) == written
    upstream.protocol.dataReceived(b"\n")
    assert transport.events()[-1] == numbered(1)


def test_the_whole_stream_arrives_in_order_and_ends_with_done(edge):
    upstream, connection, _ = upstream_stream(edge)
    upstream.read(*numbered(0, 1))
    upstream.read(*numbered(2, 3, 4))
    upstream.end()
    response = connection.response()
    assert response.complete
    assert response.events() == numbered(0, 1, 2, 3, 4) + [b"[DONE]"]


def test_a_batch_is_written_whenever_it_reaches_the_bound(edge):
    upstream, connection, transport = upstream_stream(edge)
    filler = b"x" * 2000
    events = [b'{"n":%d,"f":"%s"}' % (n, filler) for n in range(100)]
    upstream.read(*events)
    writes = transport.events()
    assert len(writes) >= 4  # the first event, then over 200 KB in bounded pieces
    # Each is written once it reaches the bound: under it before its last event.
    held = [sum(len(b"data: " + e + b"\n\n") for e in write[:-1]) for write in writes]
    assert max(held) < MAX_BATCH
    assert [e for write in writes for e in write] == events


# -- streams without batches -------------------------------------------------------


@implementer(IEventStream)
class Unbatched:
    """
    A stream that knows no batches (as a paced or replayed one): the test
    delivers its events and ends it.
    """

    usage = None
    headers = ()

    def start(self, receiver):
        self.receiver = receiver
        self.done = Deferred()
        return self.done

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


def test_a_stream_without_batches_is_written_an_event_a_write(edge):
    stream = Unbatched()
    _, transport = streaming(edge, stream)
    for event in numbered(0, 1, 2):
        stream.receiver(event)
    assert transport.events() == [numbered(0), numbered(1), numbered(2)]


def test_a_paced_stream_has_each_event_written_when_its_timer_fires(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[providers.mock]\nkind = "mock"\nstream_interval = 0.1\n')
    edge = Harness(config_path=str(config))
    transport = CountingTransport()
    edge.connect(transport).send(raw_request("POST", "/v1/chat/completions", CHAT))
    for n in range(1, 4):
        edge.reactor.advance(0.1)
        assert len(transport.events()) == n
        assert len(transport.events()[-1]) == 1


# -- streams that end, and clients that leave, amid a batch --------------------------


@implementer(IBatchedStream)
class Batched(Unbatched):
    """
    A stream that says where its batches end, when the test says so.
    """

    def start(self, receiver, flush=None):
        self.flush = flush
        return super().start(receiver)


def test_a_stream_ending_amid_a_batch_has_it_written_before_done(edge):
    stream = Batched()
    connection, _ = streaming(edge, stream)
    for event in numbered(0, 1, 2):
        stream.receiver(event)
    stream.done.callback(None)
    assert connection.response().events() == numbered(0, 1, 2) + [b"[DONE]"]


def test_a_stream_failing_amid_a_batch_has_it_written_before_the_error(edge):
    stream = Batched()
    connection, _ = streaming(edge, stream)
    for event in numbered(0, 1, 2):
        stream.receiver(event)
    stream.done.errback(APIError(502, "gone", type="server_error", code="upstream_error"))
    events = connection.response().events()
    assert events[:3] == numbered(0, 1, 2)
    assert json.loads(events[3])["error"]["code"] == "upstream_error"


def test_a_client_gone_amid_a_batch_is_written_nothing_more(edge):
    stream = Batched()
    connection, transport = streaming(edge, stream)
    for event in numbered(0, 1, 2):
        stream.receiver(event)
    written = transport.value()
    connection.lose()
    stream.flush()
    assert transport.value() == written
    assert connection.response().events() == numbered(0)


def test_a_stream_going_on_after_the_response_is_over_is_written_nothing(edge):
    stream = Batched()
    connection, transport = streaming(edge, stream)
    stream.receiver(numbered(0)[0])
    stream.done.callback(None)
    written = transport.value()
    stream.receiver(numbered(1)[0])
    stream.flush()
    assert transport.value() == written
    assert connection.response().events() == numbered(0) + [b"[DONE]"]


class SlowClient(CountingTransport):
    """
    A client that reads nothing: as Twisted's transports do, a write that
    leaves more than C{limit} bytes waiting pauses the producer.
    """

    limit = 32 * 1024

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.limit and self.producer is not None:
            self.producer.pauseProducing()


def test_a_batch_the_client_cannot_take_pauses_the_upstream(edge):
    upstream = Upstream()
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: succeed(
        UpstreamStream("up", upstream, ChunkRelay(False)))
    connection = edge.connect(SlowClient())
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    upstream.read(*numbered(0))
    assert not upstream.paused
    upstream.read(*[b'{"n":%d,"f":"%s"}' % (n, b"x" * 1000) for n in range(40)])
    assert upstream.paused


# -- the wrappers pass the end of a batch on ---------------------------------------


def test_a_wrapper_says_where_batches_end_when_its_stream_does():
    health = SimpleNamespace(in_flight=1)
    assert IBatchedStream.providedBy(Tracked(Batched(), health))
    assert not IBatchedStream.providedBy(Tracked(Unbatched(), health))
    assert IBatchedStream.providedBy(recorded(Batched(), ChatChunkReader(), 100, print))
    assert not IBatchedStream.providedBy(recorded(Unbatched(), ChatChunkReader(), 100, print))


@pytest.mark.parametrize("wrap", [
    lambda stream: Tracked(stream, SimpleNamespace(in_flight=1)),
    lambda stream: recorded(stream, ChatChunkReader(), 100, print),
    lambda stream: recorded(Tracked(stream, SimpleNamespace(in_flight=1)), ChatChunkReader(),
                            100, print),
], ids=["tracked", "recorded", "recorded-tracked"])
def test_the_wrappers_pass_the_end_of_a_batch_on(wrap):
    stream = Batched()
    flush = object()
    wrap(stream).start(lambda item: None, flush)
    assert stream.flush is flush


@pytest.mark.parametrize("wrap", [
    lambda stream: Tracked(stream, SimpleNamespace(in_flight=1)),
    lambda stream: recorded(stream, ChatChunkReader(), 100, print),
], ids=["tracked", "recorded"])
def test_the_wrappers_start_a_stream_without_batches_as_it_expects(wrap):
    stream = Unbatched()
    wrap(stream).start(lambda item: None)  # Unbatched.start takes no flush
    assert stream.done is not None


def chunk(delta: dict, finish: str | None = None) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                       "model": "m", "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": finish}]},
                      separators=(",", ":")).encode()


def test_a_recorded_stream_is_written_in_batches_and_kept_in_order():
    edge = Harness({"CACHE_ENABLED": "true", "CACHE_TTL_SECONDS": "60"})
    upstream, connection, transport = upstream_stream(edge)
    upstream.read(chunk({"role": "assistant", "content": ""}))
    upstream.read(chunk({"content": "Hello"}), chunk({"content": ","}),
                  chunk({"content": " world"}), chunk({}, "stop"))
    upstream.end()
    assert len(transport.events()) == 3  # the first event, the batch, [DONE]
    assert connection.response().header("x-llmedge-cache") == "miss"
    whole = edge.request("POST", "/v1/chat/completions", body={**CHAT, "stream": False})
    assert whole.header("x-llmedge-cache") == "hit"
    assert whole.json()["choices"][0]["message"]["content"] == "Hello, world"


def test_a_stream_replayed_from_the_cache_leaves_in_one_batch_after_its_first_event():
    edge = Harness({"CACHE_ENABLED": "true", "CACHE_TTL_SECONDS": "60"})
    upstream, connection, _ = upstream_stream(edge)
    upstream.read(chunk({"role": "assistant", "content": ""}))
    upstream.read(chunk({"content": "Hello"}), chunk({"content": ","}),
                  chunk({"content": " world"}), chunk({}, "stop"))
    upstream.end()
    transport = CountingTransport()
    replay = edge.connect(transport)
    replay.send(raw_request("POST", "/v1/chat/completions", CHAT))
    assert replay.response().header("x-llmedge-cache") == "hit"
    first, rest, done = transport.events()
    assert (len(first), len(rest), done) == (1, 2, [b"[DONE]"])  # the content, the stop
