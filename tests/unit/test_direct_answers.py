"""
Answers written straight to the client's socket (L{llmedge.web.channel},
L{llmedge.direct_send}): at once and in one piece, head and body, when the
transport holds nothing unsent; through the transport, after what it
holds, otherwise, so bytes never pass each other. Over a real socket
pair, on a memory reactor; and Twisted's transport insides this relies on
(L{llmedge.twisted_insides.writable_now}), pinned.
"""

from __future__ import annotations

import socket

import pytest
import twisted
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor, StringTransport

from llmedge import twisted_insides
from llmedge.twisted_insides import writable_now
from tests.unit.support import Harness, parse_response, raw_request
from tests.unit.test_client_direct import fill, received


class Sends(socket.socket):
    """
    A socket that counts its C{send} calls.
    """

    sends = 0

    def send(self, data, *args):
        self.sends += 1
        return super().send(data, *args)


class SocketTransport(FileDescriptor):
    """
    A transport over a real non-blocking socket, as Twisted's TCP transport
    is: L{FileDescriptor}'s buffer, written only when the reactor would
    (L{flush}, standing for its turn), and the socket as its handle.
    """

    def __init__(self, sock) -> None:
        super().__init__(MemoryReactor())
        self.socket = sock
        self.connected = 1

    def getHandle(self):
        return self.socket

    def writeSomeData(self, data):
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0

    def flush(self) -> None:
        self.doWrite()

    def getPeer(self):
        return None

    def getHost(self):
        return None


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    ours = Sends(a.family, a.type, fileno=a.detach())
    ours.setblocking(False)
    b.setblocking(False)
    yield ours, b
    ours.close()
    b.close()


def connect(sock):
    edge = Harness()
    transport = SocketTransport(sock)
    protocol = edge.site.buildProtocol(None)
    protocol.makeConnection(transport)
    return protocol, transport


CHAT = raw_request("POST", "/v1/chat/completions",
                   {"model": "mock", "messages": [{"role": "user", "content": "hi"}]})


def test_an_answer_leaves_at_once_head_and_body_in_one_send(pair):
    ours, theirs = pair
    protocol, _ = connect(ours)
    protocol.dataReceived(CHAT)  # no turn of the reactor after this
    answer = parse_response(received(theirs))
    assert answer.status == 200 and answer.complete
    assert answer.json()["choices"][0]["message"]["content"] == "You said: hi"
    assert ours.sends == 1


def test_a_head_without_a_body_still_leaves(pair):
    ours, theirs = pair
    protocol, _ = connect(ours)
    protocol.dataReceived(raw_request("HEAD", "/health"))
    assert received(theirs).startswith(b"HTTP/1.1 200 ")


def test_an_answer_follows_what_the_transport_holds(pair):
    ours, theirs = pair
    protocol, transport = connect(ours)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # queued, as Twisted queues it
    protocol.dataReceived(CHAT)
    assert received(theirs) == b""
    transport.flush()
    data = received(theirs)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")


def test_what_the_kernel_does_not_take_waits_in_the_transport_in_order(pair):
    ours, theirs = pair
    protocol, transport = connect(ours)
    fill(ours)  # the client reads nothing for now
    protocol.dataReceived(CHAT)
    assert not writable_now(transport)  # the answer waits in the transport
    protocol.dataReceived(CHAT)  # a second answer goes after it
    data = b""
    for _ in range(100):
        data += received(theirs)
        transport.flush()
    assert data.count(b"HTTP/1.1 200 ") == 2
    assert parse_response(data[data.index(b"HTTP/1.1 200 "):]).complete


def test_a_transport_without_a_plain_socket_is_written_as_before():
    edge = Harness()
    transport = StringTransport()
    protocol = edge.site.buildProtocol(None)
    protocol.makeConnection(transport)
    protocol.dataReceived(CHAT)
    assert parse_response(transport.value()).status == 200


# -- the transport's insides relied on -----------------------------------------------


@pytest.mark.parametrize("name", twisted_insides.TRANSPORT)
def test_twisted_s_file_descriptor_still_has(name):
    assert hasattr(SocketTransport(socket.socket()), name), (
        f"Twisted {twisted.__version__}'s FileDescriptor has no {name}: "
        "llmedge.twisted_insides.writable_now relies on it")


def test_a_transport_holding_bytes_is_not_writable_now_until_it_sent_them(pair):
    ours, _ = pair
    transport = SocketTransport(ours)
    assert writable_now(transport)
    transport.write(b"x")
    assert not writable_now(transport), "FileDescriptor._tempDataLen no longer counts what it holds"
    transport.flush()
    assert writable_now(transport), "FileDescriptor's buffer not empty after a whole write"


def test_a_transport_half_or_wholly_closing_is_not_writable_now(pair):
    ours, _ = pair
    transport = SocketTransport(ours)
    transport.loseWriteConnection()
    assert not writable_now(transport), "FileDescriptor._writeDisconnecting no longer set"
    transport = SocketTransport(ours)
    transport.loseConnection()
    assert not writable_now(transport)


def test_a_transport_of_another_kind_is_never_writable_now():
    assert not writable_now(StringTransport())


def test_a_stream_is_written_through_the_transport_a_turn_s_writes_together(pair):
    ours, theirs = pair
    protocol, transport = connect(ours)
    protocol.dataReceived(raw_request(
        "POST", "/v1/chat/completions",
        {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]}))
    assert ours.sends == 0 and not writable_now(transport)
    transport.flush()
    assert received(theirs).startswith(b"HTTP/1.1 200 ")
