"""
Twisted's undocumented parts that llmedge relies on (llmedge.twisted_insides),
each pinned to the behaviour relied on: a Twisted upgrade that changes one
fails here, naming it. The channels' own insides are pinned beside the
channels (tests.unit.test_channel, test_h2), from the same lists.
"""

import pytest
import twisted
from twisted.internet.address import IPv4Address
from twisted.internet.base import ReactorBase
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.test.requesthelper import DummyChannel

from llmedge import twisted_insides
from llmedge.twisted_insides import (
    channel_of, clear_exit_signal, gone, request_line,
)
from tests.unit.support import Harness


def request():
    return http.Request(DummyChannel())


@pytest.mark.parametrize("name", twisted_insides.REQUEST)
def test_twisted_request_still_has(name):
    assert hasattr(request(), name), (
        f"Twisted {twisted.__version__}'s Request has no {name}: llmedge.twisted_insides "
        "relies on it")


def test_a_request_whose_connection_is_lost_is_gone():
    lost = request()
    assert not gone(lost)
    lost.connectionLost(Failure(ConnectionLost()))
    assert gone(lost), "Request._disconnected no longer says the connection was lost"


def test_a_finished_request_is_gone():
    answered = request()
    answered.setResponseCode(200)
    answered.finish()
    assert gone(answered)


def test_the_reactor_keeps_the_signal_that_stopped_it():
    assert "_exitSignal" in vars(ReactorBase), (
        f"Twisted {twisted.__version__}'s ReactorBase has no _exitSignal: "
        "llmedge's clean exit after SIGTERM relies on it")


def test_forgetting_the_exit_signal():
    class Stopped:
        _exitSignal = 15

    reactor = Stopped()
    clear_exit_signal(reactor)
    assert reactor._exitSignal is None
    clear_exit_signal(object())  # a reactor without one is left alone


def test_a_negotiating_connection_s_channel_is_found():
    edge = Harness()
    connection = edge.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    connection.makeConnection(StringTransport())
    assert isinstance(channel_of(connection), http.HTTPChannel), (
        "_GenericHTTPChannelProtocol._channel no longer holds the channel")
    assert channel_of(object()) is None


def test_the_request_line_is_known_while_the_body_is_read():
    edge = Harness()
    connection = edge.connect()
    connection.send(b"POST /v1/embeddings?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{")
    channel = connection.transport.producer
    assert request_line(channel) == (b"POST", b"/v1/embeddings?x=1"), (
        "HTTPChannel._command/_path no longer hold the request line during the body")


def test_the_request_line_is_known_while_the_body_is_read_after_a_head_read_line_by_line():
    edge = Harness()
    connection = edge.connect()
    connection.send(b"POST /v1/embeddings?x=1 HTTP/1.1\r\nHost: t\r\n")  # Twisted's own parse
    connection.send(b"Content-Length: 9\r\n\r\n{")
    channel = connection.transport.producer
    assert request_line(channel) == (b"POST", b"/v1/embeddings?x=1"), (
        "HTTPChannel._command/_path no longer hold the request line during the body")


@pytest.mark.parametrize("name", twisted_insides.HTTP)
def test_twisted_web_http_still_has(name):
    assert hasattr(http, name), (
        f"Twisted {twisted.__version__}'s twisted.web.http has no {name}: "
        "llmedge.twisted_insides relies on it")


def test_the_identity_decoder_passes_on_its_length_then_finishes_with_the_rest():
    data, rest = [], []
    decoder = http._IdentityTransferDecoder(5, data.append, rest.append)
    decoder.dataReceived(b"abc")
    assert (data, rest) == ([b"abc"], []), "_IdentityTransferDecoder finished early"
    decoder.dataReceived(b"deNEXT")
    assert (b"".join(data), rest) == (b"abcde", [b"NEXT"]), (
        "_IdentityTransferDecoder(length, data, finish) no longer hands on `length` bytes "
        "then the rest to `finish`")
