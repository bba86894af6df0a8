"""
Requests written straight to the socket (L{llmedge.direct_send}):
one C{send} when the kernel takes it all, the transport for whatever it
does not and for everything after, and never for a handle that is not a
plain non-blocking socket. Over a real socket pair, no reactor.
"""

from __future__ import annotations

import socket

import pytest
from twisted.internet.testing import StringTransport

from llmedge.direct_send import RequestWriter
from tests.unit.test_client import OK, Upstreams


class HandleTransport(StringTransport):
    """
    A transport whose handle is C{handle}, as a TCP transport's is its socket.
    """

    def __init__(self, handle):
        super().__init__()
        self.handle = handle

    def getHandle(self):
        return self.handle


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def received(sock):
    chunks = []
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def fill(sock):
    """
    Send until the kernel takes no more.
    """
    while True:
        try:
            sock.send(b"f" * 65536)
        except BlockingIOError:
            return


def test_a_request_goes_to_the_socket_in_one_send(pair):
    ours, theirs = pair
    transport = HandleTransport(ours)
    writer = RequestWriter(transport)
    writer.write(b"POST / HTTP/1.1\r\n\r\n")
    assert received(theirs) == b"POST / HTTP/1.1\r\n\r\n"
    assert transport.value() == b""
    assert writer.direct


def test_what_the_socket_does_not_take_goes_through_the_transport_and_all_after(pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = HandleTransport(ours)
    writer = RequestWriter(transport)
    big = bytes(range(256)) * 8192
    writer.write(big)
    taken = received(theirs)
    assert 0 < len(taken) < len(big)
    assert taken + transport.value() == big
    writer.write(b"next")
    assert transport.value().endswith(b"next")
    assert received(theirs) == b""
    assert not writer.direct


def test_a_socket_with_no_room_leaves_the_whole_request_to_the_transport(pair):
    ours, theirs = pair
    fill(ours)
    transport = HandleTransport(ours)
    writer = RequestWriter(transport)
    writer.write(b"request")
    assert transport.value() == b"request"
    assert not writer.direct


def test_a_failing_socket_leaves_the_request_to_the_transport(pair):
    ours, theirs = pair
    theirs.close()
    transport = HandleTransport(ours)
    RequestWriter(transport).write(b"request")
    assert transport.value() == b"request"


@pytest.mark.parametrize("handle", ["no handle", "not a socket", "blocking"])
def test_anything_but_a_non_blocking_socket_is_written_through_the_transport(handle, pair):
    ours, theirs = pair
    if handle == "no handle":
        transport = StringTransport()
    elif handle == "not a socket":
        transport = HandleTransport(object())  # a TLS connection, say
    else:
        ours.setblocking(True)
        transport = HandleTransport(ours)
    writer = RequestWriter(transport)
    writer.write(b"request")
    assert transport.value() == b"request"
    assert received(theirs) == b""
    assert not writer.direct


def test_a_connection_writes_each_request_straight_to_its_socket(pair):
    ours, theirs = pair
    up = Upstreams()
    d = up.request(body=b"{}")
    _, _, factory, _, _ = up.reactor.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    transport = HandleTransport(ours)
    protocol.makeConnection(transport)
    first = received(theirs)
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    protocol.dataReceived(OK)
    assert d.result.code == 200
    up.request(body=b'{"again":1}')
    assert received(theirs).endswith(b'\r\n\r\n{"again":1}')
    assert transport.value() == b""
