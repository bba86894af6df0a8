"""
HTTP/2 attacks on the real daemon over TLS (ALPN C{h2}), by a real HTTP/2
client (the h2 library over an C{ssl} socket): Rapid Reset ends in GOAWAY
C{ENHANCE_YOUR_CALM} with memory bounded and other clients served, the
stream cap is enforced before the client acknowledged it, an oversized
header list is answered 431, and a client that floods PINGs without reading
is not read either.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest
from h2.settings import SettingCodes
from hyperframe.frame import PingFrame

from llmedge.testing import Daemon
from llmedge.testing.certs import make_pki
from tests.integration.conftest import require_tool, scrape, send_until_unread

KEY = "sk-http2-test"
CAP = 5
CONFIG = (
    '[providers.slow]\nkind = "mock"\nlatency = 60\n'
    '[models."slow"]\ntargets = [{ provider = "slow", model = "mock" }]\n'
    '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n'
)
MiB = 1024 * 1024


def chat(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "h2"}]}).encode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def daemon(pki, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "llmedge.toml"
    config.write_text(CONFIG)
    listen = f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}"
    env = {"API_KEYS": KEY, "RATE_LIMIT_ENABLED": "false",
           "SERVER_HTTP2_MAX_CONCURRENT_STREAMS": str(CAP)}
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--listen", listen, "--config", str(config)]
    with Daemon(args, env=env) as running:
        yield running


def tls_port(daemon) -> int:
    return int(daemon.addresses[1].rsplit(":", 1)[1])


@dataclass
class Answer:
    status: int | None = None
    body: bytes = b""
    ended: bool = False
    reset: int | None = None


@dataclass
class H2Peer:
    """
    An HTTP/2 client: the h2 library over a TLS socket that negotiated h2.
    """

    port: int
    pki: object
    answers: dict[int, Answer] = field(default_factory=lambda: defaultdict(Answer))
    events: list = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
        assert self.tls.selected_alpn_protocol() == "h2"
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.tls.sendall(data)

    def request(self, method: bytes, path: bytes, body: bytes | None = None, headers=(),
                flush: bool = True) -> int:
        stream = self.h2.get_next_available_stream_id()
        fields = [(b":method", method), (b":path", path), (b":scheme", b"https"),
                  (b":authority", b"localhost"), (b"authorization", b"Bearer " + KEY.encode()),
                  *headers]
        if body is not None:
            fields.append((b"content-type", b"application/json"))
        self.h2.send_headers(stream, fields, end_stream=body is None)
        if body is not None:
            self.h2.send_data(stream, body, end_stream=True)
        if flush:
            self.flush()
        return stream

    def read(self, wait: bool = True) -> None:
        """
        Take in what the server sent (waiting for it unless C{wait} is false).
        """
        if not wait and not self.tls.pending() and not select.select([self.tls], [], [], 0)[0]:
            return
        try:
            data = self.tls.recv(65536)
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self.events.append(event)
            answer = self.answers[getattr(event, "stream_id", 0)]
            if isinstance(event, h2.events.ResponseReceived):
                answer.status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                answer.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset):
                answer.reset = event.error_code
        if not self.goaway:
            self.flush()

    def read_until(self, done) -> None:
        while not done() and not self.closed and not self.goaway:
            self.read()

    @property
    def goaway(self) -> h2.events.ConnectionTerminated | None:
        return next((e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)),
                    None)

    def close(self) -> None:
        self.tls.close()


def rapid_reset(port: int, pki, streams: int = 2000) -> H2Peer:
    """
    Open streams (each a complete chat request to the slow model) and reset
    each at once, 50 to a write, until told GOAWAY or C{streams} are sent.
    """
    peer = H2Peer(port, pki)
    body = chat("slow")
    try:
        for _ in range(streams // 50):
            # the bodies count against the connection's window, given back
            # by the server's WINDOW_UPDATEs
            peer.read_until(lambda: peer.h2.outbound_flow_control_window >= 50 * len(body))
            for _ in range(50):
                stream = peer.request(b"POST", b"/v1/chat/completions", body, flush=False)
                peer.h2.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            peer.flush()
            peer.read(wait=False)
            if peer.goaway or peer.closed:
                break
        peer.read_until(lambda: False)
    except (ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
        pass  # the server closed while we wrote
    peer.close()
    return peer


def test_rapid_reset_gets_goaway_with_memory_bounded_and_others_served(daemon, pki):
    port = tls_port(daemon)
    rapid_reset(port, pki)  # warm up: every code path loaded, buffers grown once
    before = daemon.rss()
    attackers: list[H2Peer] = []

    def attack() -> None:
        for _ in range(20):
            attackers.append(rapid_reset(port, pki))

    thread = threading.Thread(target=attack)
    good = H2Peer(port, pki)
    thread.start()
    served = []
    while thread.is_alive() or not served:
        stream = good.request(b"POST", b"/v1/chat/completions", chat("mock"))
        good.read_until(lambda: good.answers[stream].ended)
        served.append(good.answers[stream].status)
    thread.join()
    good.close()
    assert len(attackers) == 20
    for attacker in attackers:
        assert attacker.goaway is not None, "an attacker was never told GOAWAY"
        assert attacker.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert attacker.goaway.additional_data == b"too many streams reset or refused"
    assert set(served) == {200}
    assert daemon.rss() - before < 20 * MiB
    # the reset streams' work (a 60 s wait each) was cancelled with them
    assert "llmedge_http_requests_in_flight 1.0" in scrape(daemon.host_port)
    assert "Traceback" not in daemon.text
    assert "Unhandled" not in daemon.text


def test_streams_past_the_cap_are_refused(daemon, pki):
    peer = H2Peer(tls_port(daemon), pki)
    # sent before the server's SETTINGS are read: the client knows no cap yet
    streams = [peer.request(b"POST", b"/v1/chat/completions", chat("slow"), flush=False)
               for _ in range(CAP + 3)]
    peer.flush()
    peer.read_until(lambda: sum(peer.answers[s].reset is not None for s in streams) >= 3)
    settings = next(e for e in peer.events if isinstance(e, h2.events.RemoteSettingsChanged))
    peer.close()
    assert settings.changed_settings[SettingCodes.MAX_CONCURRENT_STREAMS].new_value == CAP
    assert [peer.answers[s].reset for s in streams] == (
        [None] * CAP + [h2.errors.ErrorCodes.REFUSED_STREAM] * 3)
    assert peer.goaway is None


def test_oversized_header_list_gets_431_json(daemon, pki):
    peer = H2Peer(tls_port(daemon), pki)
    stream = peer.request(b"GET", b"/v1/models", headers=[(b"x-big", b"a" * 20000)])
    following = peer.request(b"GET", b"/v1/models")
    peer.read_until(lambda: peer.answers[stream].ended and peer.answers[following].ended)
    peer.close()
    assert peer.answers[stream].status == 431
    assert json.loads(peer.answers[stream].body)["error"]["code"] == "headers_too_large"
    assert peer.answers[following].status == 200


def test_curl_over_http2_is_answered_431_for_oversized_headers(daemon, pki):
    require_tool("curl")
    result = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(pki.ca_cert), "-w", "\n%{http_code} %{http_version}",
         "-H", f"Authorization: Bearer {KEY}", "-H", "x-big: " + "a" * 17000,
         f"https://localhost:{tls_port(daemon)}/v1/models"],
        capture_output=True, text=True, timeout=30)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "431 2", result.stderr
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_ping_flood_without_reading_is_not_read(daemon, pki):
    peer = H2Peer(tls_port(daemon), pki)
    before = daemon.rss()
    pings = PingFrame(0, opaque_data=b"12345678").serialize() * 4096
    sent = send_until_unread(peer.tls, pings, 1024 * MiB, daemon.host_port)
    assert sent is not None, "llmedge still reads after 1 GiB of PINGs"
    grown = daemon.rss() - before
    peer.close()
    assert sent < 64 * MiB  # what the kernel's buffers hold, both ways
    assert grown < 10 * MiB
    assert "Traceback" not in daemon.text
