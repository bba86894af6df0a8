"""
The upstream client against an upstream that sends too much or not HTTP:
every buffer bounded, the connection dropped past a bound, and each kind
of failure told apart (unreachable, malformed, too large). Also the
declared interface between a connection and its response.
"""

from __future__ import annotations

import pytest
from twisted.internet import error as net
from twisted.internet.defer import CancelledError
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from zope.interface import implementer
from zope.interface.verify import verifyObject

from llmedge.providers.client import (
    MAX_BUFFER,
    MAX_HEAD,
    BodyTooLarge,
    HeaderPairs,
    HeadTooLarge,
    IBodySink,
    IBodySource,
    IIdlePool,
    Response,
    discard,
    read_body,
)
from llmedge.providers.client.connection import Connection
from llmedge.providers.upstream_errors import from_failure
from tests.unit.test_client import OK, Body, Upstreams

KEY = (b"http", b"example.com", 8080)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def failure_of(d):
    """
    The Failure C{d} failed with (consumed).
    """
    failures = []
    d.addErrback(failures.append)
    assert failures, f"{d!r} did not fail"
    return failures[0]


# read_body's limit


def test_a_declared_length_over_the_limit_fails_at_once_and_drops_the_connection():
    up = Upstreams()
    d, _, transport = up.exchange(HEAD + b"Content-Length: 1000001\r\n\r\n{")
    body = read_body(d.result, limit=1000000)
    reason = failure_of(body)
    assert reason.check(BodyTooLarge)
    assert reason.value.declared == 1000001
    assert transport.disconnected or transport.disconnecting
    assert up.pool.take(KEY) is None


@pytest.mark.parametrize("framing,piece", [
    (b"Connection: close\r\n", b"x" * 4096),
    (b"Transfer-Encoding: chunked\r\n", b"1000\r\n" + b"x" * 4096 + b"\r\n"),
])
def test_a_body_that_never_ends_fails_past_the_limit(framing, piece):
    up = Upstreams()
    d, protocol, transport = up.exchange(HEAD + framing + b"\r\n")
    body = read_body(d.result, limit=100 * 1024)
    sent = 0
    while not body.called:
        protocol.dataReceived(piece)
        sent += 4096
        assert sent <= 200 * 1024, "read on past the limit"
    assert failure_of(body).check(BodyTooLarge)
    assert transport.disconnected or transport.disconnecting


def test_a_complete_body_over_the_limit_fails():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert failure_of(read_body(d.result, limit=6)).check(BodyTooLarge)


def test_a_body_at_the_limit_is_read():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert read_body(d.result, limit=7).result == b'{"a":1}'


def test_what_nobody_reads_is_kept_to_a_bound():
    up = Upstreams()
    d, protocol, transport = up.exchange(HEAD + b"Connection: close\r\n\r\n")
    for _ in range(8):
        protocol.dataReceived(b"x" * (MAX_BUFFER // 2))
        if transport.producerState == "paused":
            break
    assert transport.producerState == "paused"
    assert d.result._size <= MAX_BUFFER + MAX_BUFFER // 2


# Failures told apart


@pytest.mark.parametrize("head,words", [
    (b"HTTTP/1.1 200 OK\r\n\r\n", "status line"),
    (b"HTTP/2.0 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 999 Odd\r\n\r\n", "status code"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "colon"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "header name"),
])
def test_a_head_that_is_not_http_is_a_malformed_response(head, words):
    up = Upstreams()
    d, _, transport = up.exchange(head)
    error = from_failure("up", failure_of(d))
    assert error.status == 502
    assert error.code == "upstream_malformed_response"
    assert words in error.message
    assert error.outcome == "malformed"
    assert "\\x" not in error.message and "b'" not in error.message  # no upstream bytes
    assert transport.disconnected or transport.disconnecting


def test_a_head_over_the_bound_is_too_large():
    up = Upstreams()
    d = up.request()
    protocol, transport = up.accept()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
    while not d.called:
        protocol.dataReceived(b"X-Filler: " + b"y" * 1000 + b"\r\n")
    reason = failure_of(d)
    assert reason.value.reasons[0].check(HeadTooLarge)
    error = from_failure("up", reason)
    assert error.code == "upstream_response_too_large"
    assert str(MAX_HEAD) in error.message
    assert error.outcome == "too_large"
    assert transport.disconnected or transport.disconnecting


def test_bad_chunk_framing_is_a_malformed_response():
    up = Upstreams()
    d, protocol, _ = up.exchange(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    body = read_body(d.result)
    protocol.dataReceived(b"zz\r\nhello\r\n")
    error = from_failure("up", failure_of(body))
    assert error.code == "upstream_malformed_response"
    assert "chunk" in error.message


def test_a_body_cut_short_is_a_malformed_response():
    up = Upstreams()
    d, protocol, _ = up.exchange(HEAD + b"Content-Length: 100\r\n\r\n{\"a\"")
    body = read_body(d.result)
    protocol.connectionLost(Failure(net.ConnectionDone()))
    error = from_failure("up", failure_of(body))
    assert error.code == "upstream_malformed_response"
    assert "before the response was complete" in error.message


def test_a_body_over_the_limit_is_too_large():
    error = from_failure("up", Failure(BodyTooLarge(1024)))
    assert (error.status, error.code, error.outcome) == (502, "upstream_response_too_large",
                                                          "too_large")
    assert "1024 bytes" in error.message


def test_refused_connection_is_unreachable():
    error = from_failure("up", Failure(net.ConnectionRefusedError()))
    assert (error.code, error.outcome) == ("upstream_unreachable", "unreachable")


def test_a_connection_closed_before_any_byte_is_unreachable():
    up = Upstreams()
    d = up.request()
    protocol, _ = up.accept()
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert from_failure("up", failure_of(d)).code == "upstream_unreachable"


# discard


def test_discarding_an_unread_body_closes_its_connection():
    up = Upstreams()
    d, protocol, transport = up.exchange(HEAD + b"Content-Length: 100\r\n\r\n{")
    discard(d.result)
    assert transport.disconnected or transport.disconnecting
    protocol.connectionLost(Failure(net.ConnectionAborted()))  # nobody left to tell


def test_discarding_a_body_already_here_leaves_its_connection_in_the_pool():
    up = Upstreams()
    d, _, transport = up.exchange(OK)
    discard(d.result)
    assert not transport.disconnecting
    assert up.pool.take(KEY) is not None


# The interface between connection and response


def test_connection_and_response_provide_their_interfaces():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK)
    connection = protocol._wrappedProtocol  # the endpoint's wrapper around it
    assert isinstance(connection, Connection)
    verifyObject(IBodySource, connection)
    verifyObject(IBodySink, d.result)
    verifyObject(IIdlePool, up.pool)


@implementer(IBodySource)
class Source:
    """
    A body source recording what its sink asked of it.
    """

    def __init__(self):
        self.calls = []

    def pauseBody(self):
        self.calls.append("pause")

    def resumeBody(self):
        self.calls.append("resume")

    def abortBody(self):
        self.calls.append("abort")


def started_response():
    response = Response((b"HTTP", 1, 1), 200, b"OK", HeaderPairs())
    source = Source()
    response.bodyStarted(source)
    return response, source


def test_a_response_pauses_its_source_when_its_buffer_is_full_and_resumes_for_a_reader():
    response, source = started_response()
    response.bodyData(b"x" * MAX_BUFFER)
    assert source.calls == []
    response.bodyData(b"x")
    assert source.calls == ["pause"]
    reader = Body()
    response.deliverBody(reader)
    assert source.calls == ["pause", "resume"]
    assert len(reader.data) == MAX_BUFFER + 1


def test_a_reader_pausing_a_held_response_keeps_its_source_paused():
    response, source = started_response()
    response.bodyData(b"x" * (MAX_BUFFER + 1))

    class Pausing(Body):
        def connectionMade(self):
            self.transport.pauseProducing()

    reader = Pausing()
    response.deliverBody(reader)
    assert source.calls == ["pause"]
    reader.transport.resumeProducing()
    assert source.calls == ["pause", "resume"]


def test_stopping_the_body_aborts_the_source_and_nothing_after_its_end():
    response, source = started_response()
    reader = Body()
    response.deliverBody(reader)
    reader.transport.stopProducing()
    assert source.calls == ["abort"]
    response.bodyEnded(None)
    reader.transport.stopProducing()
    reader.transport.pauseProducing()
    assert source.calls == ["abort"]
    assert reader.reason.check(ResponseDone)


def test_a_response_ended_by_failure_tells_its_reader():
    response, _ = started_response()
    reader = Body()
    response.deliverBody(reader)
    response.bodyData(b"ab")
    response.bodyEnded(Failure(ResponseFailed([Failure(net.ConnectionLost())])))
    assert reader.data == b"ab"
    assert reader.reason.check(ResponseFailed)


def test_cancelling_read_body_aborts_the_source():
    response, source = started_response()
    body = read_body(response, limit=10)
    body.cancel()
    assert source.calls == ["abort"]
    assert failure_of(body).check(CancelledError)


def test_read_body_with_a_limit_reads_any_response():
    class Canned:
        def deliverBody(self, protocol):
            protocol.makeConnection(StringTransport())
            protocol.dataReceived(b"x" * 11)
            protocol.connectionLost(Failure(ResponseDone()))

    assert failure_of(read_body(Canned(), limit=10)).check(BodyTooLarge)
    assert read_body(Canned(), limit=11).result == b"x" * 11


@pytest.mark.parametrize("endless", [
    b"1" + b";" + b"x" * 1000,          # a chunk-size line that never ends
    b"0\r\n" + b"X-Trailer: t\r\n" * 100,  # trailers that never end
])
def test_chunk_lines_and_trailers_are_bounded(endless):
    from llmedge.providers.client.chunked import MAX_CHUNK_LINE

    up = Upstreams()
    d, protocol, transport = up.exchange(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    body = read_body(d.result)
    protocol.dataReceived(endless[:5])
    sent = 5
    while not body.called:
        piece = endless[5:] if endless.startswith(b"0") else b"x" * 1000
        protocol.dataReceived(piece)
        sent += len(piece)
        assert sent <= MAX_HEAD + MAX_CHUNK_LINE + 4096, "read on past the bounds"
    error = from_failure("up", failure_of(body))
    assert error.code == "upstream_malformed_response"
    assert "too long" in error.message
    assert transport.disconnected or transport.disconnecting
