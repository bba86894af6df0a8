"""
The upstream HTTP/1.1 client: what it writes, how it reads responses, when
it reuses a connection, cancellation and back-pressure; over
L{StringTransport}s on a L{MemoryReactorClock}, and at the end against the
fake upstream on a real loopback socket.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings, strategies as st
from twisted.internet import error as net
from twisted.internet.defer import CancelledError
from twisted.internet.protocol import Protocol
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer
from zope.interface.verify import verifyObject
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse

from llmedge.providers.client import MAX_BUFFER, ConnectionPool, HTTP11Client
from llmedge.providers.client import MAX_HEAD, MalformedResponse
from llmedge.providers.client import BodyTooLarge, body_here, read_body
from llmedge.providers.upstream_errors import from_failure, unreachable

URL = b"http://example.com:8080/v1/chat/completions"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n1\r\n \r\na\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")


class CountingTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, data):
        self.writes += 1
        super().write(data)


class Body(Protocol):
    """
    A body protocol recording what it is given.
    """

    def __init__(self):
        self.data = b""
        self.reason = None

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.reason = reason


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class _Resolver:
    """
    Every name is 127.0.0.1, at once.
    """

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        receiver.resolutionBegan(_Resolution(hostName))
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", portNumber))
        receiver.resolutionComplete()
        return receiver


@implementer(IReactorPluggableNameResolver)
class Reactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} that resolves names itself, as Twisted 26's
    does (Twisted 24.7's has no resolver, so L{HostnameEndpoint} would go
    to a thread and never connect in memory).
    """

    def __init__(self):
        super().__init__()
        self.nameResolver = _Resolver()

    def installNameResolver(self, resolver):
        self.nameResolver, old = resolver, self.nameResolver
        return old


class Upstreams:
    """
    A client on a fake reactor, and the upstream end of its connections.
    """

    def __init__(self, per_host=4, idle_timeout=60.0):
        self.reactor = Reactor()
        self.pool = ConnectionPool(self.reactor, per_host, idle_timeout)
        self.client = HTTP11Client(self.reactor, self.pool, 5.0)

    def request(self, url=URL, body=b"{}", method=b"POST", headers=None):
        if headers is None:
            headers = {b"content-type": b"application/json"}
        return self.client.request(method, url, headers, body)

    def accept(self):
        """
        Complete the last connection attempt: its protocol and transport.
        """
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        protocol = factory.buildProtocol(None)
        transport = CountingTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def exchange(self, response, **request):
        """
        One request answered with C{response} on a new connection.
        """
        d = self.request(**request)
        protocol, transport = self.accept()
        protocol.dataReceived(response)
        return d, protocol, transport

    @property
    def connections(self):
        return len(self.reactor.tcpClients)


def body_of(d):
    """
    The whole body of the response C{d} fired with.
    """
    return read_body(d.result).result


# What goes on the wire


def test_request_head_and_body_are_one_write():
    up = Upstreams()
    up.request(body=b'{"x":1}', headers={b"content-type": b"application/json",
                                          b"x-request-id": b"r1"})
    _, transport = up.accept()
    assert transport.writes == 1
    assert transport.value() == (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: example.com:8080\r\n"
        b"Content-Type: application/json\r\nX-Request-Id: r1\r\n"
        b"Content-Length: 7\r\n\r\n{\"x\":1}")


@pytest.mark.parametrize("url,line", [
    (b"http://example.com/v1/x", b" /v1/x HTTP/1.1\r\nHost: example.com\r\n"),
    (b"https://example.com:443/v1?a=b", b" /v1?a=b HTTP/1.1\r\nHost: example.com\r\n"),
    (b"https://Example.COM:8443", b" / HTTP/1.1\r\nHost: example.com:8443\r\n"),
    (b"http://[::1]:8080/p", b" /p HTTP/1.1\r\nHost: [::1]:8080\r\n"),
])
def test_request_line_and_host_come_from_the_url(url, line):
    assert Upstreams().client._target(url).line == line


def test_each_url_is_parsed_once(monkeypatch):
    up = Upstreams()
    parsed = []
    target = up.client._target
    monkeypatch.setattr(up.client, "_target", lambda url: parsed.append(url) or target(url))
    for _ in range(3):
        up.request()
    assert parsed == [URL]


def test_a_header_value_cannot_smuggle_another_header():
    up = Upstreams()
    up.request(headers={b"x-request-id": b"a\r\nX-Evil: 1"})
    _, transport = up.accept()
    assert b"\r\nX-Evil" not in transport.value()
    assert b"X-Request-Id: a X-Evil: 1\r\n" in transport.value()


def test_headers_the_client_writes_itself_are_refused():
    failure = Upstreams().request(headers={b"host": b"elsewhere"})
    assert failure.result.check(ValueError)
    failure.addErrback(lambda _: None)


def test_unsupported_scheme_fails_the_request():
    d = Upstreams().request(url=b"ftp://example.com/x")
    assert d.result.check(SchemeNotSupported)
    d.addErrback(lambda _: None)


# Reading responses


def test_content_length_body_is_read_whole():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    response = d.result
    verifyObject(IResponse, response)
    assert (response.version, response.code, response.phrase) == ((b"HTTP", 1, 1), 200, b"OK")
    assert response.length == 7
    assert body_of(d) == b'{"a":1}'


def test_headers_are_case_insensitive_with_every_value():
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 200 OK\r\nx-a: 1\r\nX-A:  2 \r\nContent-Length: 0\r\n\r\n")
    headers = d.result.headers
    assert headers.get_all(b"x-a") == [b"1", b"2"]
    assert headers.get_all(b"X-A") == [b"1", b"2"]
    assert headers.get(b"X-a") == b"1"


def test_headers_are_the_head_s_pairs_in_order_names_lower_cased():
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 200 OK\r\nX-B: 1\r\nx-a: 2\r\nX-B:\t3\r\n"
                          b"Content-Length: 0\r\n\r\n")
    assert list(d.result.headers) == [(b"x-b", b"1"), (b"x-a", b"2"), (b"x-b", b"3")]


def test_a_header_not_sent_has_no_value():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert d.result.headers.get(b"retry-after") is None
    assert d.result.headers.get(b"retry-after", b"") == b""
    assert d.result.headers.get_all(b"retry-after") == []


def test_header_values_are_kept_as_sent_but_for_surrounding_blanks():
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 200 OK\r\nX-A: \t a\x00b\rc \t\r\n"
                          b"X-B:\r\nContent-Length: 0\r\n\r\n")
    assert list(d.result.headers) == [(b"x-a", b"a\x00b\rc"), (b"x-b", b"")]


def test_connection_control_headers_stay_out_of_the_response_headers():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert d.result.headers.get(b"content-length") is None
    assert list(d.result.headers) == [(b"content-type", b"application/json")]


def test_chunked_body_is_dechunked_and_trailers_ignored():
    up = Upstreams()
    d, _, _ = up.exchange(CHUNKED)
    assert d.result.length is UNKNOWN_LENGTH
    assert body_of(d) == b"hello 0123456789"
    assert len(up.pool._idle[(b"http", b"example.com", 8080)]) == 1


@pytest.mark.parametrize("response,body", [
    (CHUNKED, b"hello 0123456789"),
    (OK, b'{"a":1}'),
    (CHUNKED.replace(b"\r\n", b"\n"), b"hello 0123456789"),
])
def test_a_response_split_anywhere_reads_the_same(response, body):
    for split in range(1, len(response)):
        up = Upstreams()
        d = up.request()
        protocol, _ = up.accept()
        protocol.dataReceived(response[:split])
        protocol.dataReceived(response[split:])
        assert body_of(d) == body, split
        assert up.pool.take((b"http", b"example.com", 8080)) is not None, split


_chunks = st.lists(st.tuples(
    st.binary(min_size=1, max_size=40),                     # the chunk's data
    st.sampled_from([b"", b";a=b", b" ", b"\t;x", b";q=\"\r\""]),  # what follows its size
    st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]),            # its size line's end
    st.booleans(),                                           # size in upper-case hex
), max_size=6)


def _chunked(chunks, trailers):
    out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    for data, extension, eol, upper in chunks:
        size = b"%X" % len(data) if upper else b"%x" % len(data)
        out.append(size + extension + eol + data + b"\r\n")
    out.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(out)


def _read_in(response, pieces):
    """
    What a client reading C{response} in C{pieces} gets: the body, or the
    failure's type, and whether the connection went back to the pool.
    """
    up = Upstreams()
    d = up.request()
    protocol, _ = up.accept()
    reader = Body()
    for piece in pieces:
        protocol.dataReceived(piece)
        if d.called and reader.transport is None:
            d.result.deliverBody(reader)
    if reader.reason is None:
        return None, False
    outcome = reader.data if reader.reason.check(ResponseDone) else type(reader.reason.value)
    return outcome, up.pool.take((b"http", b"example.com", 8080)) is not None


@given(_chunks, st.sampled_from([b"", b"X-T: 1\r\n"]), st.data())
@settings(max_examples=200, deadline=None)
def test_a_chunked_body_reads_the_same_however_it_is_split(chunks, trailers, data):
    response = _chunked(chunks, trailers)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(response) - 1), max_size=8)))
    pieces = [response[a:b] for a, b in zip([0, *cuts], [*cuts, len(response)])]
    whole = b"".join(chunk for chunk, _, _, _ in chunks)
    assert _read_in(response, pieces) == (whole, True)
    assert _read_in(response, [response]) == (whole, True)


@given(_chunks, st.integers(0, 10_000), st.binary(min_size=1, max_size=3))
@settings(max_examples=300, deadline=None)
def test_a_broken_chunked_body_fails_the_same_however_it_arrives(chunks, where, junk):
    response = _chunked(chunks, b"")
    head = response.index(b"\r\n\r\n") + 4
    at = head + where % (len(response) - head)
    broken = response[:at] + junk + response[at:]
    at_once = _read_in(broken, [broken])
    byte_by_byte = _read_in(broken, [broken[i:i + 1] for i in range(len(broken))])
    assert at_once == byte_by_byte


#: What a chunk-size line is (RFC 9112 7.1, blanks before an extension
#: allowed): up to 15 hex digits, blanks, an optional extension; CRs
#: before its LF ignored.
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\n]*)?\Z")


@given(st.lists(st.sampled_from([b"0", b"7", b"a", b"F", b" ", b"\t", b";", b"\r", b"x", b"="]),
                min_size=1, max_size=20).map(b"".join))
@example(b"0" * 16)
@example(b"00000000000000a")
@example(b"1\r ")
@example(b"a ;x=\r\r")
@settings(max_examples=500, deadline=None)
def test_a_chunk_size_line_is_read_as_the_rfc_says(line):
    spec = _SIZE_LINE.match(line.rstrip(b"\r"))
    size = int(spec.group(1), 16) if spec else 0
    if size > 64:
        return  # a size read right, too large to send here
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + line + b"\n" + b"d" * size + b"\r\n0\r\n\r\n")
    outcome, _ = _read_in(response, [response])
    if spec is None:
        assert outcome is ResponseFailed
    elif size:
        assert outcome == b"d" * size
    else:
        assert outcome is None or outcome == b""  # the last chunk: the rest is trailers


@pytest.mark.parametrize("response", [CHUNKED, OK])
def test_a_response_arriving_byte_by_byte_reads_the_same(response):
    up = Upstreams()
    d = up.request()
    protocol, _ = up.accept()
    reader = Body()
    for i in range(len(response)):
        protocol.dataReceived(response[i:i + 1])
        if d.called and reader.transport is None:
            d.result.deliverBody(reader)
    assert reader.data == (b"hello 0123456789" if response is CHUNKED else b'{"a":1}')
    assert reader.reason.check(ResponseDone)


def test_body_ended_by_close_is_potential_data_loss_and_not_reused():
    up = Upstreams()
    d, protocol, transport = up.exchange(b"HTTP/1.1 200 OK\r\n\r\nsome ")
    reader = Body()
    d.result.deliverBody(reader)
    protocol.dataReceived(b"data")
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert reader.data == b"some data"
    assert reader.reason.check(PotentialDataLoss)
    assert up.pool._idle == {}


def test_stopped_close_delimited_body_is_not_potential_data_loss():
    up = Upstreams()
    d, protocol, _ = up.exchange(b"HTTP/1.1 200 OK\r\n\r\nsome ")
    reader = Body()
    d.result.deliverBody(reader)
    reader.transport.stopProducing()
    protocol.connectionLost(Failure(net.ConnectionAborted()))
    assert reader.reason.check(ResponseFailed)


def test_read_body_takes_a_close_delimited_body_whole():
    up = Upstreams()
    d, protocol, _ = up.exchange(b"HTTP/1.0 200 OK\r\n\r\nall")
    body = read_body(d.result)
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert body.result == b"all"


@pytest.mark.parametrize("method,status", [(b"HEAD", 200), (b"POST", 204), (b"POST", 304)])
def test_no_body_after_head_204_and_304(method, status):
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status, method=method)
    assert body_of(d) == b""
    assert up.pool.take((b"http", b"example.com", 8080)) is not None


def test_the_length_of_a_head_answer_is_among_its_headers():
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method=b"HEAD")
    assert d.result.headers.get_all(b"content-length") == [b"5"]


def test_informational_responses_are_skipped():
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    assert d.result.code == 200
    assert body_of(d) == b'{"a":1}'


@pytest.mark.parametrize("head", [
    b"garbage\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
])
def test_a_malformed_head_fails_the_request_and_closes(head):
    up = Upstreams()
    d, _, transport = up.exchange(head)
    failure = d.result
    d.addErrback(lambda _: None)
    assert failure.check(ResponseFailed)
    assert failure.value.reasons[0].check(MalformedResponse)
    assert transport.disconnecting
    assert unreachable("up", failure).status == 502
    assert up.pool._idle == {}


@pytest.mark.parametrize("lines,what", [
    (b"X-A: 1\r\nno colon\r\nX-B: 2\r\n", "a header line without a colon"),
    (b"X-A: 1\r\n: no name\r\n", "a header name that is not a token"),
    (b"X-A: 1\r\nBad Name: x\r\nno colon\r\n", "a header name that is not a token"),
    (b"X-A: 1\r\nX-\xc3\xa9: x\r\n", "a header name that is not a token"),
])
def test_a_malformed_header_line_is_named(lines, what):
    up = Upstreams()
    d, _, _ = up.exchange(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n")
    failure = d.result
    d.addErrback(lambda _: None)
    assert str(failure.value.reasons[0].value) == what


def test_a_head_larger_than_the_bound_fails():
    up = Upstreams()
    d = up.request()
    protocol, transport = up.accept()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
    for _ in range(MAX_HEAD // 1000):
        protocol.dataReceived(b"X-Pad: " + b"p" * 991 + b"\r\n")
    assert not d.called
    protocol.dataReceived(b"X-Pad: " + b"p" * 991 + b"\r\n")
    assert d.result.check(ResponseFailed)
    d.addErrback(lambda _: None)
    assert transport.disconnecting


def test_a_bad_chunk_fails_the_body_and_closes():
    up = Upstreams()
    d, protocol, transport = up.exchange(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n")
    reader = Body()
    d.result.deliverBody(reader)
    assert reader.data == b"ok"
    assert reader.reason.check(ResponseFailed)
    assert reader.reason.value.reasons[0].check(MalformedResponse)
    assert transport.disconnecting


def test_connection_closed_before_any_response():
    up = Upstreams()
    d = up.request()
    protocol, _ = up.accept()
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert d.result.check(ResponseNeverReceived)
    error = unreachable("up", d.result)
    d.addErrback(lambda _: None)
    assert "closed before a response" in error.message


def test_connection_closed_within_the_head_is_a_malformed_response():
    up = Upstreams()
    d = up.request()
    protocol, _ = up.accept()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-")
    protocol.connectionLost(Failure(net.ConnectionLost()))
    assert type(d.result.value) is ResponseFailed
    error = from_failure("up", d.result)
    assert error.code == "upstream_malformed_response"
    assert "closed in the middle of the response head" in error.message
    d.addErrback(lambda _: None)
    d.addErrback(lambda _: None)


def test_truncated_body_fails():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK[:-2])
    body = read_body(d.result)
    protocol.connectionLost(Failure(net.ConnectionLost()))
    assert body.result.check(ResponseFailed)
    body.addErrback(lambda _: None)


def test_connection_refused_is_reported_as_such():
    up = Upstreams()
    d = up.request()
    _, _, factory, _, _ = up.reactor.tcpClients[-1]
    factory.clientConnectionFailed(up.reactor.connectors[-1],
                                   Failure(net.ConnectionRefusedError()))
    up.reactor.advance(1)
    assert "connection refused" in unreachable("up", d.result).message
    d.addErrback(lambda _: None)


# Connection reuse


def test_connection_is_reused_after_a_complete_response():
    up = Upstreams()
    d, protocol, transport = up.exchange(OK)
    body_of(d)
    transport.clear()
    second = up.request()
    assert up.connections == 1
    assert transport.value().startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    protocol.dataReceived(OK)
    assert body_of(second) == b'{"a":1}'


@pytest.mark.parametrize("response", [
    OK.replace(b"200 OK\r\n", b"200 OK\r\nConnection: keep-alive, close\r\n"),
    OK.replace(b"HTTP/1.1", b"HTTP/1.0"),
    OK + b"HTTP/1.1 200 OK\r\n",  # bytes beyond the response
    CHUNKED.replace(b"hello", b'{"a":1}').replace(b"5;", b"7;") + b"\r\n",
])
def test_connection_is_not_reused_when_the_response_says_so(response):
    up = Upstreams()
    d, _, transport = up.exchange(response)
    assert body_of(d).startswith(b'{"a":1}')
    assert transport.disconnecting
    up.request()
    assert up.connections == 2


def test_busy_connection_is_not_lent_to_another_request():
    up = Upstreams()
    up.exchange(OK[:-3])
    up.request()
    assert up.connections == 2


def test_stopped_body_aborts_the_connection_for_good():
    up = Upstreams()
    d, protocol, transport = up.exchange(OK[:-3])
    reader = Body()
    d.result.deliverBody(reader)
    reader.transport.stopProducing()
    assert transport.disconnected  # aborted, not closed gracefully
    protocol.dataReceived(OK[-3:])  # too late: never read, never pooled
    protocol.connectionLost(Failure(net.ConnectionAborted()))
    assert reader.data == b'{"a"'
    assert reader.reason.check(ResponseFailed)
    assert up.pool._idle == {}
    up.request()
    assert up.connections == 2


def test_idle_connection_closes_after_the_idle_timeout():
    up = Upstreams(idle_timeout=60)
    _, _, transport = up.exchange(OK)
    up.reactor.advance(59)
    assert not transport.disconnecting
    up.reactor.advance(1)
    assert transport.disconnecting
    assert up.pool._idle == {}


def test_reuse_restarts_the_idle_timeout():
    up = Upstreams(idle_timeout=60)
    _, protocol, transport = up.exchange(OK)
    up.reactor.advance(50)
    up.request()
    protocol.dataReceived(OK)
    up.reactor.advance(50)
    assert not transport.disconnecting
    up.reactor.advance(10)
    assert transport.disconnecting


def test_idle_connections_per_host_are_bounded():
    up = Upstreams(per_host=1)
    first, second = up.request(), up.request()
    p2, t2 = up.accept()
    up.reactor.tcpClients.pop()
    p1, t1 = up.accept()
    p1.dataReceived(OK)
    p2.dataReceived(OK)
    assert not t1.disconnecting and t2.disconnecting
    assert body_of(first) == body_of(second) == b'{"a":1}'


def test_connection_closed_by_the_server_while_idle_leaves_the_pool():
    up = Upstreams()
    _, protocol, _ = up.exchange(OK)
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert up.pool.take((b"http", b"example.com", 8080)) is None
    up.request()
    assert up.connections == 2


def test_bytes_on_an_idle_connection_close_it():
    up = Upstreams()
    _, protocol, transport = up.exchange(OK)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
    assert transport.disconnecting
    assert up.pool.take((b"http", b"example.com", 8080)) is None


def test_close_cached_connections_fires_once_they_are_closed():
    up = Upstreams()
    _, protocol, transport = up.exchange(OK)
    closed = up.pool.closeCachedConnections()
    assert transport.disconnecting and not closed.called
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert closed.called
    up.request()
    assert up.connections == 2


# Cancellation


def test_cancel_before_the_head_aborts_the_connection():
    up = Upstreams()
    d = up.request()
    protocol, transport = up.accept()
    d.cancel()
    assert transport.disconnected
    assert d.result.check(CancelledError)
    d.addErrback(lambda _: None)
    protocol.connectionLost(Failure(net.ConnectionAborted()))  # no second firing
    assert up.pool._idle == {}


def test_cancel_while_connecting_stops_the_attempt():
    up = Upstreams()
    d = up.request()
    d.cancel()
    assert up.reactor.connectors[-1].stoppedConnecting
    assert d.result.check(CancelledError)
    d.addErrback(lambda _: None)


# Back-pressure


def test_pause_and_resume_reach_the_socket():
    up = Upstreams()
    d, _, transport = up.exchange(OK[:-3])
    reader = Body()
    d.result.deliverBody(reader)
    reader.transport.pauseProducing()
    assert transport.producerState == "paused"
    reader.transport.resumeProducing()
    assert transport.producerState == "producing"


def test_body_arriving_before_deliver_body_is_kept_for_it():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK[:-5])
    protocol.dataReceived(OK[-5:-2])
    protocol.dataReceived(OK[-2:])
    reader = Body()
    d.result.deliverBody(reader)
    assert reader.data == b'{"a":1}'
    assert reader.reason.check(ResponseDone)


def test_unread_body_stops_the_socket_until_someone_reads_it():
    up = Upstreams()
    size = 4 * MAX_BUFFER
    d, protocol, transport = up.exchange(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    protocol.dataReceived(b"x" * MAX_BUFFER)
    assert transport.producerState == "producing"
    protocol.dataReceived(b"x")
    assert transport.producerState == "paused"
    reader = Body()
    d.result.deliverBody(reader)
    assert transport.producerState == "producing"
    assert len(reader.data) == MAX_BUFFER + 1


def test_a_consumer_pausing_in_connection_made_stays_paused():
    up = Upstreams()
    d, protocol, transport = up.exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")

    class Pausing(Body):
        def connectionMade(self):
            self.transport.pauseProducing()

    d.result.deliverBody(Pausing())
    assert transport.producerState == "paused"


def test_connection_paused_by_its_consumer_reads_again_in_the_pool():
    up = Upstreams()
    d, protocol, transport = up.exchange(OK[:-2])

    class Pausing(Body):
        def dataReceived(self, data):
            super().dataReceived(data)
            self.transport.pauseProducing()

    reader = Pausing()
    d.result.deliverBody(reader)
    protocol.dataReceived(OK[-2:])
    assert reader.reason.check(ResponseDone)
    assert transport.producerState == "producing"
    assert up.pool.take((b"http", b"example.com", 8080)) is not None


def test_stopping_a_finished_body_leaves_the_pooled_connection_alone():
    up = Upstreams()
    d, _, transport = up.exchange(OK)
    reader = Body()
    d.result.deliverBody(reader)
    reader.transport.stopProducing()
    reader.transport.pauseProducing()
    assert not transport.disconnecting
    assert transport.producerState == "producing"


# read_body


def test_read_body_fires_at_once_for_a_body_already_here():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    body = read_body(d.result)
    assert body.called and body.result == b'{"a":1}'


def test_read_body_waits_for_the_rest():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK[:-3])
    body = read_body(d.result)
    assert not body.called
    protocol.dataReceived(OK[-3:])
    assert body.result == b'{"a":1}'


def test_read_body_reads_any_response():
    class Canned:
        def deliverBody(self, protocol):
            protocol.makeConnection(StringTransport())
            protocol.dataReceived(b"canned")
            protocol.connectionLost(Failure(ResponseDone()))

    assert read_body(Canned()).result == b"canned"


# body_here


def test_a_body_already_here_is_taken_without_a_deferred():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert body_here(d.result) == b'{"a":1}'
    assert up.pool.take((b"http", b"example.com", 8080)) is not None


def test_a_body_is_taken_here_once():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    body_here(d.result)
    assert body_here(d.result) is None


def test_a_body_ended_by_the_close_is_whole_here():
    up = Upstreams()
    d, protocol, _ = up.exchange(b"HTTP/1.0 200 OK\r\n\r\nall")
    assert body_here(d.result) is None
    protocol.connectionLost(Failure(net.ConnectionDone()))
    assert body_here(d.result) == b"all"


def test_a_body_still_coming_is_left_for_read_body():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK[:-3])
    assert body_here(d.result) is None
    body = read_body(d.result)
    protocol.dataReceived(OK[-3:])
    assert body.result == b'{"a":1}'


def test_a_body_over_the_limit_is_left_for_read_body_to_refuse():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    assert body_here(d.result, limit=6) is None
    body = read_body(d.result, limit=6)
    assert body.result.check(BodyTooLarge)
    body.addErrback(lambda _: None)


def test_a_body_that_failed_is_left_for_read_body_to_tell():
    up = Upstreams()
    d, protocol, _ = up.exchange(OK[:-3])
    protocol.connectionLost(Failure(net.ConnectionLost()))
    assert body_here(d.result) is None
    body = read_body(d.result)
    assert body.result.check(ResponseFailed)
    body.addErrback(lambda _: None)


def test_a_body_given_to_a_protocol_is_not_here():
    up = Upstreams()
    d, _, _ = up.exchange(OK)
    d.result.deliverBody(Body())
    assert body_here(d.result) is None


def test_only_the_client_s_own_responses_have_a_body_here():
    class Canned:
        def deliverBody(self, protocol):
            raise AssertionError("read")

    assert body_here(Canned()) is None
