"""
L{EdgeChannel} and the site's connection limit: malformed requests answered
in JSON, the head and the body bounded in time, connections counted.
"""

import pytest

from llmedge.web.request import LINGER_SECONDS
from tests.unit.support import Harness, parse_response

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
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
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
    connection.send(b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
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
