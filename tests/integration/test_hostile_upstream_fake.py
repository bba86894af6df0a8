"""
The hostile fake upstream as a process (L{HostileUpstream}), talked to
with raw sockets: its normal answer, a script, an endless scenario read
for megabytes, back-pressure from a client that stops reading, and the
log and waits a test relies on.
"""

from __future__ import annotations

import json
import socket

import pytest

from llmedge.testing import HostileUpstream, wait_until

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def upstream():
    with HostileUpstream() as running:
        yield running


@pytest.fixture
def hostile(upstream):
    upstream.reset()
    return upstream


def connect(upstream, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(upstream.host_port)
    return sock


def post(sock: socket.socket, body: dict, headers: str = "") -> None:
    data = json.dumps(body).encode()
    sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: up\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n{headers}\r\n".encode() + data)


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """
    One Content-Length response: its head and its body.
    """
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """
    Everything until the server closes, and whether it reset.
    """
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        return received, True
    return received, False


def only_request(upstream) -> int | None:
    """
    The number of the one request logged since the reset (numbers go on
    across resets), or L{None} while there is none.
    """
    entries = upstream.log()
    assert len(entries) <= 1, entries
    return entries[0]["n"] if entries else None


def rss_kib(process) -> int:
    with open(f"/proc/{process.pid}/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))


def test_the_listening_line_gives_the_address(upstream):
    assert upstream.output[0] == f"hostile upstream listening on tcp:{upstream.base_url[7:]}"


def test_a_request_without_misbehaviour_gets_a_chat_completion_and_the_connection_is_kept(
        hostile):
    with connect(hostile) as sock:
        for model in ("first", "second"):
            post(sock, {"model": model, "messages": []})
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert json.loads(body)["model"] == model


def test_a_script_with_then_close_sends_its_bytes_then_closes_cleanly(hostile):
    hostile.script("script-close", [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 99\r\n\r\n{"])
    with connect(hostile) as sock:
        post(sock, {"model": "m"}, "x-request-id: script-close\r\n")
        received, reset = read_until_closed(sock)
    assert received == b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{" and not reset
    assert hostile.wait_closed(only_request(hostile))["closed_by"] == "fake"


def test_a_script_with_then_abort_sends_its_bytes_then_resets(hostile):
    hostile.script("script-abort", [b"HTTP/1.1 200 OK\r\n"], then="abort")
    with connect(hostile) as sock:
        post(sock, {"model": "m"}, "x-request-id: script-abort\r\n")
        received, reset = read_until_closed(sock)
    assert received == b"HTTP/1.1 200 OK\r\n" and reset


def test_an_endless_scenario_is_read_for_megabytes_then_closed_by_the_client(hostile):
    wanted = 8 * 1024 * 1024
    with connect(hostile) as sock:
        post(sock, {"model": "hostile+endless-chunked"})
        received = 0
        while received < wanted:
            received += len(sock.recv(1 << 20))
    entry = hostile.wait_closed(only_request(hostile))
    assert entry["closed_by"] == "peer" and entry["bytes_sent"] >= wanted


def test_the_fake_stays_flat_in_memory_while_it_sends_64_mib(hostile):
    with connect(hostile) as sock:
        post(sock, {"model": "hostile+endless-json"})
        sock.recv(1 << 20)
        before = rss_kib(hostile.process)
        received = 0
        while received < 64 * 1024 * 1024:
            received += len(sock.recv(1 << 20))
        assert rss_kib(hostile.process) - before < 16 * 1024


def test_a_client_that_stops_reading_pauses_the_endless_writer(hostile):
    with connect(hostile, receive_buffer=4096) as sock:
        post(sock, {"model": "hostile+endless-events"})
        (entry,) = wait_until(lambda: [e for e in hostile.log() if e["paused"]],
                              what="the writer paused")
        assert entry["bytes_sent"] < 16 * 1024 * 1024


def test_a_typo_in_a_scenario_is_answered_400(hostile):
    with connect(hostile) as sock:
        post(sock, {"model": "hostile+endless-jsno"})
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 400") and "endless-jsno" in json.loads(body)["error"][
        "message"]


def test_wait_closed_times_out_while_the_connection_is_open(hostile):
    with connect(hostile) as sock:
        post(sock, {"model": "hostile+hang"})
        n = wait_until(lambda: only_request(hostile), what="the request was logged")
        with pytest.raises(TimeoutError):
            hostile.wait_closed(n, timeout=0.2)
