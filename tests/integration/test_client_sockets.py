"""
L{llmedge.providers.client} against a real server on a loopback socket
(the fake upstream's site, in this process's reactor): keep-alive reuse, a
de-chunked stream, a cancel the server sees at once, a reset, a refusal.
"""

import json

import pytest
import pytest_twisted
from twisted.internet import error as net
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived

from llmedge.providers.client import ConnectionPool, HTTP11Client
from llmedge.providers.client import read_body
from llmedge.providers.upstream_errors import unreachable
from llmedge.testing import polled


@pytest.fixture
def fake_upstream():
    from twisted.internet import reactor

    from llmedge.testing.upstream import build_site

    site = build_site(reactor)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    pool = ConnectionPool(reactor, 4, 60.0)
    client = HTTP11Client(reactor, pool, 5.0)
    yield client, pool, site, b"http://127.0.0.1:%d/v1/chat/completions" % port.getHost().port
    pytest_twisted.blockon(pool.closeCachedConnections())
    pytest_twisted.blockon(port.stopListening())


def chat(model, stream=False):
    return json.dumps({"model": model, "stream": stream,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest_twisted.inlineCallbacks
def test_real_upstream_answers_on_one_kept_alive_connection(fake_upstream):
    client, pool, _, url = fake_upstream
    seen = set()
    for _ in range(3):
        response = yield client.request(b"POST", url, {b"content-type": b"application/json"},
                                        chat("fake"))
        document = json.loads((yield read_body(response)))
        assert document["choices"][0]["message"]["content"].startswith("chunk0")
        [idle] = pool._idle.values()
        [connection] = idle
        seen.add(id(connection))
    assert len(seen) == 1


@pytest_twisted.inlineCallbacks
def test_real_upstream_stream_is_dechunked(fake_upstream):
    client, _, _, url = fake_upstream
    response = yield client.request(b"POST", url, {}, chat("fake+chunks=300", stream=True))
    body = yield read_body(response)
    assert body.endswith(b"data: [DONE]\n\n")
    events = [json.loads(line[6:]) for line in body.split(b"\n")
              if line.startswith(b"data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == " ".join(f"chunk{i}" for i in range(300))


@pytest_twisted.inlineCallbacks
def test_real_upstream_sees_a_cancelled_request_go(fake_upstream):
    from twisted.internet import reactor

    client, _, site, url = fake_upstream
    d = client.request(b"POST", url, {}, chat("fake+slow-headers=30"))
    yield polled(reactor, lambda: site.fake_log.entries, interval=0.001,
                 what="the fake upstream seeing the request")
    cancelled = reactor.seconds()
    d.cancel()
    with pytest.raises(CancelledError):
        yield d
    n = site.fake_log.entries[-1]["n"]
    entry = yield site.fake_log.ended(n, "disconnected_at").addTimeout(2, reactor)
    assert entry["disconnected_at"] - cancelled < 0.1


@pytest_twisted.inlineCallbacks
def test_real_upstream_reset_before_answering(fake_upstream):
    client, _, _, url = fake_upstream
    with pytest.raises(ResponseNeverReceived) as caught:
        yield client.request(b"POST", url, {}, chat("fake+reset-after=0"))
    assert "closed before a response" in unreachable("up", Failure(caught.value)).message


@pytest_twisted.inlineCallbacks
def test_real_refused_connection(fake_upstream):
    from twisted.internet import reactor

    client, _, _, _ = fake_upstream
    port = reactor.listenTCP(0, build_nothing(), interface="127.0.0.1")
    number = port.getHost().port
    yield port.stopListening()
    with pytest.raises(net.ConnectionRefusedError):
        yield client.request(b"POST", b"http://127.0.0.1:%d/" % number, {}, b"{}")


def build_nothing():
    from twisted.internet.protocol import Factory

    return Factory.forProtocol(Protocol)


def deferLater(clock, seconds):
    d = Deferred()
    clock.callLater(seconds, d.callback, None)
    return d
