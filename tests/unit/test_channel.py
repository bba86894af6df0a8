"""
L{EdgeChannel} and the site's connection limit: malformed requests answered
in JSON, the head and the body bounded in time, one C{Host}, a client that
does not read not read either, connections counted.
"""

import pytest
import twisted
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.web.http_headers import Headers

from llmedge.web.channel import EdgeChannel
from llmedge.web.drain import CLOSE_SECONDS, drain
from llmedge.web.request import LINGER_SECONDS
from tests.unit.support import Harness, parse_response, raw_request

GOOD = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def edge():
    return Harness({
        "SERVER_HEADER_TIMEOUT_SECONDS": "5",
        "SERVER_BODY_TIMEOUT_SECONDS": "7",
        "SERVER_MAX_CONNECTIONS": "2",
    })


def error_of(raw: bytes, status: int) -> dict:
    response = parse_response(raw)
    assert response.status == status
    assert response.header("content-type") == "application/json"
    assert response.header("x-request-id")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"GET /\r\n\r\n", 400, "bad_request"),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, "bad_request"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 600 + b"\r\n", 431, "headers_too_large"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, 431, "headers_too_large"),
    (b"GET /" + b"a" * 20000, 414, "uri_too_long"),
], ids=["http-0.9", "cl-and-te", "header-count", "header-size", "request-line"])
def test_malformed_request_is_answered_in_json_and_closed(edge, data, status, code):
    connection = edge.connect()
    connection.send(data)
    assert error_of(connection.transport.value(), status)["code"] == code
    assert connection.transport.disconnecting


def test_what_follows_a_refusal_is_not_parsed(edge):
    connection = edge.connect()
    connection.send(b"GET /\r\n\r\n" + GOOD + b"BAD\r\n\r\n")
    answers = connection.transport.value()
    assert answers.startswith(b"HTTP/1.1 400 ")
    assert b"HTTP/1.1 200" not in answers and answers.count(b"HTTP/1.1 4") == 1


def test_refused_connection_is_dropped_after_lingering(edge):
    connection = edge.connect()
    connection.send(b"GET /\r\n\r\n")
    edge.reactor.advance(LINGER_SECONDS)
    assert connection.transport.disconnected or connection.transport.disconnecting


def test_head_dribbled_past_the_header_timeout_gets_408(edge):
    connection = edge.connect()
    for byte in b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaa":
        # each byte well within Twisted's idle timeout
        connection.send(bytes([byte]))
        edge.reactor.advance(0.125)
    assert error_of(connection.transport.value(), 408)["code"] == "request_timeout"


def test_silent_connection_is_closed_after_the_header_timeout(edge):
    connection = edge.connect()
    edge.reactor.advance(4.9)
    assert not connection.transport.disconnecting
    edge.reactor.advance(0.2)
    assert connection.transport.disconnecting
    assert connection.transport.value() == b""


def test_wait_between_kept_alive_requests_is_not_the_header_timeout(edge):
    connection = edge.connect()
    connection.send(GOOD)
    edge.reactor.advance(30)
    assert not connection.transport.disconnecting
    connection.transport.clear()
    connection.send(GOOD)
    assert parse_response(connection.transport.value()).status == 200


def test_body_dribbled_past_the_body_timeout_gets_408(edge):
    connection = edge.connect()
    connection.send(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(7 * 8):
        connection.send(b" ")
        edge.reactor.advance(0.125)
    assert error_of(connection.transport.value(), 408)["code"] == "request_timeout"


def test_connections_past_the_maximum_get_503_and_the_count_drops_on_close(edge):
    first = edge.connect()
    edge.connect()
    assert edge.site.connections == 2
    third = edge.connect()
    error = error_of(third.transport.value(), 503)
    assert error["code"] == "too_many_connections"
    assert edge.site.connections == 2
    first.protocol.connectionLost(None)
    assert edge.site.connections == 1
    fourth = edge.connect()
    fourth.send(GOOD)
    assert parse_response(fourth.transport.value()).status == 200


def test_a_flood_past_twice_the_maximum_is_closed_at_once(edge):
    held = [edge.connect() for _ in range(4)]  # 2 served, 2 refused and lingering
    assert [c.transport.value()[:12] for c in held[2:]] == [b"HTTP/1.1 503"] * 2
    dropped = edge.connect()
    assert dropped.transport.value() == b""
    assert dropped.transport.disconnecting
    for connection in [*held[2:], dropped]:
        connection.protocol.connectionLost(None)
    assert edge.connect().transport.value()[:12] == b"HTTP/1.1 503"


def test_no_limits_when_set_to_zero():
    edge = Harness({"SERVER_HEADER_TIMEOUT_SECONDS": "0", "SERVER_MAX_CONNECTIONS": "0"})
    connections = [edge.connect() for _ in range(50)]
    edge.reactor.advance(59)  # short of Twisted's idle timeout
    assert not any(c.transport.disconnecting for c in connections)


def test_refusals_work_behind_a_wrapping_factory_as_tls_uses(edge):
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport
    from twisted.protocols.policies import WrappingFactory

    wrapping = WrappingFactory(edge.site)
    transports = [StringTransport() for _ in range(5)]
    for transport in transports:
        wrapping.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)).makeConnection(transport)
    assert [t.value()[:12] for t in transports[2:4]] == [b"HTTP/1.1 503"] * 2
    assert transports[4].value() == b"" and transports[4].disconnecting


# -- Host (RFC 9112, 3.2) ------------------------------------------------------


def test_http11_request_without_host_is_refused(edge):
    connection = edge.connect()
    connection.send(b"GET /health HTTP/1.1\r\n\r\n")
    assert error_of(connection.transport.value(), 400)["code"] == "bad_request"
    assert connection.transport.disconnecting


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
@pytest.mark.parametrize("second", [b"t", b"other"], ids=["same-value", "other-value"])
def test_request_with_two_hosts_is_refused(edge, version, second):
    connection = edge.connect()
    connection.send(b"GET /health " + version + b"\r\nHost: t\r\nHost: " + second + b"\r\n\r\n")
    assert error_of(connection.transport.value(), 400)["code"] == "bad_request"


def test_http10_request_without_host_is_served(edge):
    connection = edge.connect()
    connection.send(b"GET /health HTTP/1.0\r\n\r\n")
    assert parse_response(connection.transport.value()).status == 200


def test_absolute_form_target_with_its_host_is_served(edge):
    connection = edge.connect()
    connection.send(b"GET http://elsewhere.test/health HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n")
    assert parse_response(connection.transport.value()).status == 200


def test_request_without_host_is_not_handed_over_nor_what_follows(edge):
    connection = edge.connect()
    connection.send(b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}" + GOOD)
    answers = connection.transport.value()
    assert answers.startswith(b"HTTP/1.1 400 ")
    assert b"HTTP/1.1 200" not in answers


# -- a client that does not read ------------------------------------------------


class FillingTransport(StringTransport):
    """
    A L{StringTransport} with a TCP transport's high-water mark, as
    L{twisted.internet.abstract.FileDescriptor} has it: every write that
    leaves more than C{mark} bytes unsent pauses its producer; L{drain}, the
    client reading all, resumes it. Lenient, as a real transport is, about
    the producer's calls after a close.
    """

    def __init__(self, mark: int) -> None:
        super().__init__(lenient=True)
        self.mark = mark
        self.full = False
        self.read = b""

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and len(self.value()) > self.mark:
            self.full = True
            self.producer.pauseProducing()

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def drain(self) -> None:
        self.read += self.value()
        self.clear()
        if self.full:
            self.full = False
            self.producer.resumeProducing()


def ask(*ids: str) -> bytes:
    """
    Pipelined requests, told apart by their request ids.
    """
    return b"".join(raw_request("GET", "/health", headers={"X-Request-Id": i}) for i in ids)


def answered(raw: bytes) -> list[str]:
    """
    The request ids of the answers in C{raw}, in order.
    """
    return [line.split(b": ", 1)[1].decode() for line in raw.split(b"\r\n")
            if line.lower().startswith(b"x-request-id: ")]


def held(edge, *ids: str):
    """
    A connection whose client sent C{ids} at once and reads nothing: its
    transport fills with the first answer.
    """
    connection = edge.connect(FillingTransport(mark=1))
    connection.send(ask(*ids))
    return connection


def test_pipelined_requests_wait_while_the_client_does_not_read(edge):
    connection = held(edge, "r1", "r2", "r3")
    assert answered(connection.transport.value()) == ["r1"]
    assert connection.transport.producerState == "paused", (
        "still reading a client that does not read (did Twisted's requestDone resume it?)")


def test_held_requests_are_answered_in_order_as_the_client_reads(edge):
    connection = held(edge, "r1", "r2", "r3")
    for _ in range(3):
        connection.transport.drain()
    assert answered(connection.transport.read) == ["r1", "r2", "r3"]
    assert connection.transport.producerState == "producing"


def test_bytes_arriving_while_held_are_answered_after_those_held(edge):
    connection = held(edge, "r1", "r2")
    connection.send(ask("r3"))  # already on its way when reading stopped
    assert answered(connection.transport.value()) == ["r1"]
    for _ in range(3):
        connection.transport.drain()
    assert answered(connection.transport.read) == ["r1", "r2", "r3"]


def test_pipelined_requests_are_answered_at_once_while_the_client_reads(edge):
    connection = edge.connect(FillingTransport(mark=2**20))
    connection.send(ask("r1", "r2", "r3"))
    assert answered(connection.transport.value()) == ["r1", "r2", "r3"]
    assert connection.transport.producerState == "producing"


def unread(edge) -> float:
    return edge.service.metrics.registry.get_sample_value("llmedge_unread_connections")


def test_a_connection_not_read_is_counted_until_its_client_reads(edge):
    connection = held(edge, "r1", "r2")
    assert unread(edge) == 1
    connection.transport.drain()
    connection.transport.drain()
    assert unread(edge) == 0


def test_a_connection_not_read_stops_counting_when_it_is_gone(edge):
    connection = held(edge, "r1", "r2")
    connection.lose()
    assert unread(edge) == 0


def test_held_bytes_start_no_head_timer(edge):
    connection = held(edge, "r1", "r2")
    edge.reactor.advance(5 + 1)  # past SERVER_HEADER_TIMEOUT_SECONDS
    assert answered(connection.transport.value()) == ["r1"]
    assert not connection.transport.disconnecting


def test_a_held_client_that_never_reads_is_closed_by_the_idle_timeout(edge):
    connection = held(edge, "r1", "r2")
    channel = connection.transport.producer
    edge.reactor.advance(channel.timeOut - 0.5)
    assert not connection.transport.disconnecting
    edge.reactor.advance(1)
    assert connection.transport.disconnecting
    edge.reactor.advance(channel.abortTimeout)
    assert connection.transport.disconnected  # aborted: its answers could not go


def test_a_drain_closes_a_held_connection_without_answering_what_it_held(edge):
    connection = held(edge, "r1", "r2")
    drain(edge.site, edge.reactor, 30)
    assert connection.transport.disconnecting
    connection.transport.drain()
    assert answered(connection.transport.read) == ["r1"]
    edge.reactor.advance(CLOSE_SECONDS + 0.1)
    assert connection.transport.disconnected


STREAM = {"model": "mock", "stream": True,
          "messages": [{"role": "user", "content": "one two three four five"}]}


@pytest.fixture
def streaming(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[providers.mock]\nkind = "mock"\nstream_interval = 0.1\n')
    return Harness(config_path=str(config))


def test_a_stream_paused_by_its_transport_goes_on_with_it(streaming):
    connection = streaming.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", STREAM))
    streaming.reactor.advance(0.1)
    connection.transport.producer.pauseProducing()
    written = len(connection.transport.value())
    for _ in range(50):
        streaming.reactor.advance(0.1)
    assert len(connection.transport.value()) == written
    connection.transport.producer.resumeProducing()
    for _ in range(50):
        streaming.reactor.advance(0.1)
    assert connection.response().events()[-1] == b"[DONE]"


def test_a_stream_paused_by_its_transport_stops_reading_until_resumed(streaming):
    connection = streaming.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", STREAM))
    streaming.reactor.advance(0.1)
    connection.transport.producer.pauseProducing()
    assert connection.transport.producerState == "paused"  # Twisted read on
    connection.transport.producer.resumeProducing()
    assert connection.transport.producerState == "producing"  # as Twisted reads ahead


def test_what_was_pipelined_behind_a_paused_stream_follows_it(streaming):
    connection = streaming.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", STREAM) + GOOD)
    streaming.reactor.advance(0.1)
    connection.transport.producer.pauseProducing()
    connection.transport.producer.resumeProducing()
    for _ in range(50):
        streaming.reactor.advance(0.1)
    answers = connection.transport.value()
    follower = answers.rindex(b"HTTP/1.1 ")
    assert answers.index(b"data: [DONE]") < follower
    assert parse_response(answers[follower:]).status == 200


# -- the response head -------------------------------------------------------------


def written_head(edge, headers) -> bytes:
    connection = edge.connect()
    channel = connection.transport.producer
    connection.transport.clear()
    channel.writeHeaders(b"HTTP/1.1", b"429", b"Too Many Requests", headers)
    return connection.transport.value()


def test_the_head_is_written_in_one_piece_every_value_on_its_line(edge):
    head = written_head(edge, Headers({b"x-one": [b"1"], b"x-two": [b"a", b"b"]}))
    assert head == (b"HTTP/1.1 429 Too Many Requests\r\nX-One: 1\r\n"
                    b"X-Two: a\r\nX-Two: b\r\n\r\n")


def test_headers_given_as_pairs_are_written_as_twisted_writes_them(edge):
    head = written_head(edge, [(b"x-one", b"1")])
    assert head == b"HTTP/1.1 429 Too Many Requests\r\nX-One: 1\r\n\r\n"


# -- Twisted's insides relied on (see EdgeChannel.TWISTED_INSIDES) ---------------


@pytest.mark.parametrize("name", EdgeChannel.TWISTED_INSIDES)
def test_twisted_still_has_what_edge_channel_relies_on(edge, name):
    connection = edge.connect()
    connection.send(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # mid-head: _version is set
    channel = connection.transport.producer
    assert hasattr(channel, name), (
        f"Twisted {twisted.__version__}'s HTTPChannel has no {name}: "
        f"EdgeChannel relies on it (see EdgeChannel.TWISTED_INSIDES)")


def test_twisted_line_receiver_parses_nothing_while_paused():
    class Lines(LineReceiver):
        def __init__(self):
            self.lines = []

        def lineReceived(self, line):
            self.lines.append(line)
            self.paused = line == b"stop"

    lines = Lines()
    lines.makeConnection(StringTransport())
    lines.dataReceived(b"a\r\nstop\r\nb\r\n")
    assert lines.lines == [b"a", b"stop"], "LineReceiver parsed on while paused"
    lines.paused = False
    lines.dataReceived(b"")
    assert lines.lines == [b"a", b"stop", b"b"], "LineReceiver.dataReceived(b'') parsed not on"


def test_twisted_keeps_what_follows_a_request_being_answered_in_its_data_buffer(streaming):
    connection = streaming.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", STREAM) + GOOD)
    channel = connection.transport.producer
    assert channel._handlingRequest is True
    assert b"".join(channel._dataBuffer) == GOOD
    assert len(GOOD) <= channel._optimisticEagerReadSize
    for _ in range(50):
        streaming.reactor.advance(0.1)
    assert channel._handlingRequest is False
    assert channel._dataBuffer == []
