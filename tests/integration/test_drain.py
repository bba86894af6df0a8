"""
SIGTERM under load on the real daemon: every request in flight, streams
included, finishes; new connections are refused at once; the grace period
bounds the wait. The same with workers.
"""

import http.client
import json
import signal
import socket
import threading
import time

import pytest

from llmedge.testing import Daemon, wait_until
from tests.integration.conftest import wait_in_flight

KEY = "sk-drain"
CONFIG = (
    '[providers.slow]\nkind = "mock"\nlatency = 1.5\nstream_interval = 0.1\n'
    '[models."slow"]\ntargets = [{ provider = "slow", model = "mock" }]\n'
    '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n'
)


def call(address, stream, results):
    body = {"model": "slow", "stream": stream,
            "messages": [{"role": "user", "content": "finish me please"}]}
    try:
        connection = http.client.HTTPConnection(*address, timeout=30)
        connection.request("POST", "/v1/chat/completions", json.dumps(body),
                           {"Authorization": f"Bearer {KEY}",
                            "Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        complete = raw.rstrip().endswith(b"data: [DONE]") if stream else \
            json.loads(raw)["object"] == "chat.completion"
        results.append((response.status, complete, response.getheader("connection")))
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        results.append(repr(e))


def start(tmp_path, *extra, env=(), config=CONFIG):
    text, config = config, tmp_path / "llmedge.toml"
    config.write_text(text)
    return Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config), *extra],
                  env={"API_KEYS": KEY, **dict(env)}).start()


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_sigterm_finishes_every_request_in_flight(tmp_path, workers):
    daemon = start(tmp_path, *workers)
    try:
        if workers:
            for i in (0, 1):
                daemon.wait_for_line(lambda line, i=i: f"llmedge worker {i} serving" in line)
        results = []
        threads = [threading.Thread(target=call, args=(daemon.host_port, i % 2 == 0, results))
                   for i in range(8)]
        for thread in threads:
            thread.start()
        wait_in_flight(daemon.host_port, 8)
        stopped_at = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        # the listener closes at once (in the supervisor and every worker):
        # then a new connection is refused
        port, copies = daemon.host_port[1], 3 if workers else 1
        wait_until(lambda: sum(f"(TCP Port {port} Closed)" in line
                               for line in daemon.output) == copies,
                   what="every copy of the listening socket closed")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(daemon.host_port, timeout=1).close()
        for thread in threads:
            thread.join(30)
        status = daemon.process.wait(30)
        took = time.monotonic() - stopped_at
    finally:
        daemon.stop()
    assert results == [(200, True, "close")] * 8, results
    assert status == 0  # nothing was lost: a clean exit, not "killed by SIGTERM"
    assert took < 10
    assert "Traceback" not in daemon.text


def test_grace_period_ends_what_is_left(tmp_path):
    daemon = start(tmp_path, env={"SHUTDOWN_GRACE_SECONDS": "0.3"},
                   config=CONFIG.replace("latency = 1.5", "latency = 20"))
    try:
        results = []
        thread = threading.Thread(target=call, args=(daemon.host_port, False, results))
        thread.start()
        wait_in_flight(daemon.host_port, 1)
        stopped_at = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        status = daemon.process.wait(15)
        thread.join(15)
    finally:
        daemon.stop()
    # a request was cut short: twistd's usual death by the signal
    assert status == -signal.SIGTERM
    assert time.monotonic() - stopped_at < 10
    # the request that outlived the grace period had its connection closed
    assert len(results) == 1 and isinstance(results[0], str), results
    assert "Disconnected" in results[0] or "Reset" in results[0], results
    assert "Grace period over: closing 1 connections" in daemon.text


def test_idle_http2_connection_gets_goaway_and_does_not_hold_the_stop(tmp_path):
    """
    An HTTP/2 connection has no "close after this response": an idle one
    must be sent GOAWAY and closed by the drain, not kept until the grace
    period ends.
    """
    import ssl

    from llmedge.testing.certs import make_pki

    pki = make_pki(tmp_path)
    listen = f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}"
    config = tmp_path / "llmedge.toml"
    config.write_text(CONFIG)
    daemon = Daemon(["--listen", listen, "--config", str(config)],
                    env={"API_KEYS": KEY, "SHUTDOWN_GRACE_SECONDS": "20"}).start()
    try:
        port = int(daemon.addresses[0].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="localhost")
        assert tls.selected_alpn_protocol() == "h2"
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        received = tls.recv(65536)  # the server's SETTINGS
        assert received[3:4] == b"\x04"
        daemon.wait_for_line(lambda line: "llmedge listening" in line)
        stopped_at = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        frames = b""
        while 7 not in _types(frames):
            chunk = tls.recv(65536)
            if not chunk:
                break
            frames += chunk
        tls.close()  # as an HTTP/2 client does once told GOAWAY
        status = daemon.process.wait(15)
        took = time.monotonic() - stopped_at
    finally:
        daemon.stop()
    assert 7 in _types(frames)  # GOAWAY
    assert took < 5
    assert status == 0


def _types(frames: bytes) -> list[int]:
    """
    The types of the whole HTTP/2 frames in C{frames}.
    """
    types = []
    while len(frames) >= 9:
        length = int.from_bytes(frames[:3], "big")
        if len(frames) < 9 + length:
            break
        types.append(frames[3])
        frames = frames[9 + length:]
    return types

