"""
Hostile input against the real daemon, over raw sockets: each kind gets a
clear 4xx in OpenAI's error shape (or a closed connection), never a 500,
never a traceback (in the answer or the log), never a stalled daemon; and
a good request right after each one succeeds. A client that pipelines and
never reads stops being read, and costs the daemon no memory to speak of.
"""

import json
import select
import socket
import time

import pytest

from llmedge.testing import Daemon
from tests.integration.conftest import API_KEY, Steady, metric, send_until_unread

LIMIT = 65536  # MAX_REQUEST_SIZE
HEADER_TIMEOUT = 1.0  # SERVER_HEADER_TIMEOUT_SECONDS
BODY_TIMEOUT = 1.0  # SERVER_BODY_TIMEOUT_SECONDS
MAX_CONNECTIONS = 12  # SERVER_MAX_CONNECTIONS
WAIT = 10.0  # the longest any answer may take

CHAT = b"/v1/chat/completions"
GOOD = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def daemon():
    env = {
        "MAX_REQUEST_SIZE": str(LIMIT), "API_KEYS": API_KEY, "RATE_LIMIT_BURST": "100000",
        "SERVER_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "SERVER_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "SERVER_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with Daemon(env=env) as running:
        yield running


# -- raw HTTP ------------------------------------------------------------------


def head(method=b"POST", target=CHAT, version=b"HTTP/1.1", headers=(), auth=True,
         json_type=True, host=True):
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: llmedge.test")
    if auth:
        lines.append(b"Authorization: Bearer " + API_KEY.encode())
    if json_type:
        lines.append(b"Content-Type: application/json")
    lines.extend(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def post(body, target=CHAT, headers=(), **kwargs):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    length = b"Content-Length: %d" % len(body)
    return head(target=target, headers=[length, *headers], **kwargs) + body


def chat(**fields):
    return post({**GOOD, **fields})


def chunked(body, size=8192):
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class Connection:
    """
    One client socket, reading responses as they come.
    """

    def __init__(self, daemon):
        self.sock = socket.create_connection(daemon.host_port, timeout=WAIT)
        self.buffer = b""

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer is read next

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        self.buffer += chunk
        return bool(chunk)

    def readable(self, timeout):
        """
        Wait on the daemon's socket for at most C{timeout} seconds.
        """
        return bool(self.buffer) or bool(select.select([self.sock], [], [], timeout)[0])

    def response(self):
        """
        The next response as C{(status, headers, body)}, or L{None} when
        the daemon closed the connection without one.
        """
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                assert not self.buffer, f"partial response: {self.buffer[:200]!r}"
                return None
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = raw_head.split(b"\r\n")
        version, status = status_line.split(b" ")[:2]
        assert version == b"HTTP/1.1"
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" in headers:
            body = self._exactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = self._dechunk()
        else:
            body = b""
        return int(status), headers, body

    def _exactly(self, n):
        while len(self.buffer) < n:
            assert self._fill(), "connection closed mid-body"
        body, self.buffer = self.buffer[:n], self.buffer[n:]
        return body

    def _line(self):
        while b"\r\n" not in self.buffer:
            assert self._fill(), "connection closed mid-chunk"
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _dechunk(self):
        body = b""
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return body
            body += self._exactly(size)
            self._exactly(2)

    def close(self):
        """
        Close cleanly and wait for the daemon to close too, so the daemon
        has counted this connection gone before the test goes on.
        """
        try:
            self.sock.shutdown(socket.SHUT_WR)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def exchange(daemon, data, responses=1):
    connection = Connection(daemon)
    try:
        connection.send(data)
        return [connection.response() for _ in range(responses)]
    finally:
        connection.close()


def assert_error(response, status=None):
    """
    A 4xx in OpenAI's shape, and nothing of the server's insides.
    """
    assert response is not None, "closed without an answer"
    code, headers, body = response
    if status is None:
        assert 400 <= code < 500, (code, body)
    else:
        assert code == status, (code, body)
    assert headers[b"content-type"] == b"application/json"
    assert headers.get(b"x-request-id")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in body.decode("utf-8", "replace")
    return error


def assert_good(response):
    assert response is not None, "closed without an answer"
    code, _, body = response
    assert code == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == "You said: hi"


@pytest.fixture
def healthy(daemon):
    """
    After the test: a good request succeeds, and the log shows no
    traceback and no unhandled error.
    """
    start = len(daemon.log)
    yield
    assert_good(exchange(daemon, chat())[0])
    log = daemon.log[start:]
    for sign in ("Traceback", "Unhandled", "Unexpected failure"):
        assert sign not in log, log[-3000:]


# -- the kinds of hostile input ---------------------------------------------------

NESTED = b"[" * 100_000
DIGITS = b"1" + b"0" * 5000


def kinds():
    """
    (id, bytes to send, expected status or None for any 4xx, expected param
    or ... for any, or "closed" for a connection closed without an answer).
    """
    any_ = ...
    return [
        # malformed and truncated JSON
        ("json-truncated", post(b'{"model": "mock",'), 400, None),
        ("json-not-json", post(b"hello"), 400, None),
        ("json-empty-body", post(b""), 400, None),
        ("json-trailing-garbage", post(b'{"model": "mock"} }'), 400, None),
        ("json-nan", post(b'{"model": "mock", "temperature": NaN}'), 400, None),
        ("json-top-level-array", post(b"[]"), 400, any_),
        ("json-top-level-null", post(b"null"), 400, any_),
        ("json-nested-arrays-100k", post(NESTED[:LIMIT - 1]), 400, None),
        ("json-nested-objects", post(b'{"a":' * 12_000), 400, None),
        ("json-nested-in-field", post(b'{"model": "mock", "messages": ' + b"[" * 50_000),
         400, None),
        ("body-invalid-utf8", post(b'{"model": "mock\xff\xfe", "messages": []}'), 400, None),
        ("string-lone-surrogate",
         post(b'{"model": "mock", "messages": [{"role": "user", "content": "\\ud800"}]}'),
         400, None),
        ("body-nul-byte", post(b'{"model": "mo\x00ck", "messages": []}'), 400, None),
        # enormous numbers and strings
        ("number-1e400", post(json.dumps(GOOD)[:-1].encode() + b', "temperature": 1e400}'),
         400, "temperature"),
        ("max-tokens-4000-digits", post(json.dumps(GOOD)[:-1].encode()
                                        + b', "max_tokens": ' + DIGITS[:4000] + b"}"),
         400, "max_tokens"),
        ("number-5000-digits", post(b'{"model": "mock", "max_tokens": ' + DIGITS + b"}"),
         400, None),
        ("string-huge-model", chat(model="m" * 60_000), 404, "model"),
        ("string-huge-key", post(b'{"' + b"k" * 60_000 + b'": 1, "model": 7}'), 400, "model"),
        # wrong types everywhere
        ("model-number", chat(model=42), 400, "model"),
        ("model-empty", chat(model=""), 400, "model"),
        ("model-missing", post({"messages": GOOD["messages"]}), 400, "model"),
        ("messages-string", chat(messages="hi"), 400, "messages"),
        ("messages-empty", chat(messages=[]), 400, "messages"),
        ("messages-item-number", chat(messages=[1]), 400, "messages[0]"),
        ("content-object", chat(messages=[{"role": "user", "content": {"a": 1}}]),
         400, "messages[0].content"),
        ("role-unknown", chat(messages=[{"role": "root", "content": "hi"}]),
         400, "messages[0].role"),
        ("max-tokens-string", chat(max_tokens="10"), 400, "max_tokens"),
        ("max-tokens-negative", chat(max_tokens=-1), 400, "max_tokens"),
        ("max-tokens-float", chat(max_tokens=1.5), 400, "max_tokens"),
        ("max-tokens-huge", chat(max_tokens=10**30), 400, "max_tokens"),
        ("seed-huge", chat(seed=2**64), 400, "seed"),
        ("temperature-string", chat(temperature="hot"), 400, "temperature"),
        ("stream-yes", chat(stream="yes"), 400, "stream"),
        ("n-huge", chat(n=10**9), 400, "n"),
        ("stop-object", chat(stop={"a": 1}), 400, "stop"),
        ("content-type-missing", post(GOOD, json_type=False), 415, None),
        # body framing
        ("content-length-2gb", head(headers=[b"Content-Length: 2147483648"]), 413, None),
        ("chunked-past-limit", head(headers=[b"Transfer-Encoding: chunked"])
         + chunked(b" " * (LIMIT + 8192))[:-5], 413, None),
        ("smuggle-cl-then-te", head(headers=[b"Content-Length: 5",
                                             b"Transfer-Encoding: chunked"])
         + b"0\r\n\r\nPOST /v1/models HTTP/1.1\r\n\r\n", 400, None),
        ("smuggle-te-then-cl", head(headers=[b"Transfer-Encoding: chunked",
                                             b"Content-Length: 5"])
         + b"0\r\n\r\n", 400, None),
        ("two-content-lengths", head(headers=[b"Content-Length: 2",
                                              b"Content-Length: 12"]) + b"{}", 400, None),
        ("content-length-negative", head(headers=[b"Content-Length: -1"]), 400, None),
        ("content-length-not-a-number", head(headers=[b"Content-Length: 1e3"]), 400, None),
        ("transfer-encoding-unknown", head(headers=[b"Transfer-Encoding: gzip"]), 400, None),
        ("chunk-size-garbage", head(headers=[b"Transfer-Encoding: chunked"])
         + b"zz\r\n{}\r\n0\r\n\r\n", 400, None),
        ("body-truncated-then-eof", "truncated", "closed", None),
        # headers
        ("header-flood-5000", head(headers=[b"X-H%d: v" % i for i in range(5000)]),
         431, None),
        ("header-count-600", head(headers=[b"X: %d" % i for i in range(600)]), 431, None),
        ("header-huge-100kb", head(headers=[b"X-Big: " + b"a" * 100_000]), 431, None),
        ("header-no-colon", head(headers=[b"no colon here"]), 400, None),
        ("header-nul-in-value", head(headers=[b"X-Nul: a\x00b"]), 400, None),
        ("header-bad-name", head(headers=[b"X Bad\x01: v"]), 400, None),
        ("host-missing", post(GOOD, host=False), 400, None),
        ("host-twice", post(GOOD, headers=[b"Host: other.test"]), 400, None),
        ("host-twice-same-value", post(GOOD, headers=[b"Host: llmedge.test"]), 400, None),
        # request line and target
        ("http-0.9", b"GET /\r\n\r\n", 400, None),
        ("http-version-2.0", head(version=b"HTTP/2.0"), 400, None),
        ("http-version-garbage", head(version=b"HTTX/1.1"), 400, None),
        ("request-line-garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
         400, None),
        ("request-line-extra-spaces", b"POST  /v1/models  HTTP/1.1\r\n\r\n", 400, None),
        ("request-line-too-long", head(target=b"/" + b"a" * 20_000), 414, None),
        ("path-nul", post(GOOD, target=b"/v1/chat\x00/completions"), 400, None),
        ("absolute-form-unknown-path", post(GOOD, target=b"http://evil/v1/../etc/passwd"),
         404, None),
        ("dot-dot-path", post(GOOD, target=b"/v1/../v1/chat/completions"), 404, None),
        ("encoded-dot-dot-path", post(GOOD, target=b"/v1/%2e%2e/v1/chat/completions"),
         404, None),
        ("encoded-slash-path", post(GOOD, target=b"/v1/chat%2fcompletions"), 404, None),
        ("method-unknown", post(GOOD, method=b"BREW"), 405, None),
        ("method-trace", head(method=b"TRACE", json_type=False), 405, None),
        ("method-lowercase", post(GOOD, method=b"post"), 405, None),
        ("method-connect", head(method=b"CONNECT", target=b"evil:443"), None, None),
    ]


KINDS = kinds()


@pytest.mark.parametrize(("data", "status", "param"), [k[1:] for k in KINDS],
                         ids=[k[0] for k in KINDS])
def test_hostile_request_is_refused_cleanly(daemon, healthy, data, status, param):
    if data == "truncated":
        connection = Connection(daemon)
        connection.send(post(json.dumps(GOOD).encode())[:-10])
        connection.sock.shutdown(socket.SHUT_WR)
        response = connection.response()
        connection.close()
    else:
        [response] = exchange(daemon, data)
    if status == "closed":
        assert response is None
        return
    error = assert_error(response, status)
    if param is not ...:
        assert error["param"] == param


def test_at_least_forty_kinds():
    assert len(KINDS) >= 40


def test_pipelined_requests_are_answered_in_order(daemon, healthy):
    first, second = exchange(daemon, chat() + post(GOOD, target=b"/v1/models/mock"),
                             responses=2)
    assert_good(first)
    assert second[0] == 405  # the second, not the first, was answered second


def test_pipelined_good_then_malformed(daemon, healthy):
    good, bad = exchange(daemon, chat() + b"GARBAGE\r\n\r\n", responses=2)
    assert_good(good)
    assert_error(bad, 400)


def test_slowloris_headers_are_cut_off(daemon, healthy):
    connection = Connection(daemon)
    dribble = iter(b"POST /v1/chat/completions HTTP/1.1\r\nX-Slow: " + b"a" * 10_000)
    started = time.monotonic()
    # one byte every 50 ms: Twisted's idle timeout (60 s) never fires
    while not connection.readable(0.05):
        connection.send(bytes([next(dribble)]))
    elapsed = time.monotonic() - started
    response = connection.response()
    connection.close()
    assert assert_error(response, 408)["code"] == "request_timeout"
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 2


def test_slowloris_body_is_cut_off(daemon, healthy):
    connection = Connection(daemon)
    connection.send(head(headers=[b"Content-Length: 10000"]))
    started = time.monotonic()
    while not connection.readable(0.05):
        connection.send(b" ")
    elapsed = time.monotonic() - started
    response = connection.response()
    connection.close()
    assert assert_error(response, 408)["code"] == "request_timeout"
    assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 2


def test_silent_connection_is_closed_after_the_header_timeout(daemon, healthy):
    connection = Connection(daemon)
    assert connection.readable(HEADER_TIMEOUT + 2)
    assert connection.response() is None
    connection.close()


def test_connections_past_the_maximum_get_503(daemon, healthy):
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            connection = Connection(daemon)
            held.append(connection)
            connection.send(post(GOOD, target=b"/v1/models", method=b"GET"))
            assert connection.response()[0] == 200  # served, and kept open
        [refused] = exchange(daemon, chat())
        error = assert_error_503(refused)
        assert error["code"] == "too_many_connections"
        # a held connection still works
        held[0].send(chat())
        assert_good(held[0].response())
    finally:
        for connection in held:
            connection.close()


def assert_error_503(response):
    assert response is not None
    code, headers, body = response
    assert code == 503
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"retry-after"] == b"1"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_absolute_form_target_is_served_as_its_path(daemon, healthy):
    """
    RFC 9112 (3.2.2): a server must accept the absolute-form; its authority
    is not used, the path is served.
    """
    response = exchange(daemon, post(GOOD, target=b"http://evil.example/v1/chat/completions"))[0]
    assert_good(response)


# -- a client that pipelines and never reads -------------------------------------

#: Answered at once: a 401 (no key) or a model list costs llmedge almost
#: nothing to make, so only back-pressure stops a client asking for millions.
UNKEYED = b"GET /v1/models HTTP/1.1\r\nHost: llmedge.test\r\n\r\n"
KEYED = UNKEYED[:-2] + b"Authorization: Bearer " + API_KEY.encode() + b"\r\n\r\n"
SENT_BOUND = 4 * 2**20
RSS_BOUND = 20 * 2**20
TWISTED_BUFFER = 65536  # a TCP transport's high-water mark (its bufferSize)


def kernel_send_buffer_max():
    """
    The most Linux lets a socket's send buffer grow to by itself (it does,
    for a peer that does not read): the daemon's answers it holds are not
    llmedge's to bound.
    """
    with open("/proc/sys/net/ipv4/tcp_wmem") as wmem:
        return int(wmem.read().split()[2])


def answered(daemon, status):
    """
    How many C{GET /v1/models} the daemon has answered with C{status},
    from C{llmedge_http_requests_total} in /metrics.
    """
    return metric(daemon.host_port, "llmedge_http_requests_total", method="GET",
                  route="/v1/models", status=str(status)) or 0.0


def answer_size(daemon, request, status):
    """
    The bytes of the answer to C{request} (asked with C{Connection: close},
    so that its end is the connection's).
    """
    with socket.create_connection(daemon.host_port, timeout=WAIT) as sock:
        sock.sendall(request[:-2] + b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    return len(answer)


@pytest.mark.parametrize(("request_", "status"), [(UNKEYED, 401), (KEYED, 200)],
                         ids=["unkeyed", "keyed"])
def test_client_that_pipelines_and_never_reads_is_no_longer_read(daemon, healthy, request_,
                                                                 status):
    """
    llmedge stops reading a client whose answers pile up unread: the
    client's C{send} blocks, the daemon's memory stays put, and it answers
    no more than the buffers between them hold (its transport's, the
    kernel's), and no more at all while it serves another client.
    """
    size = answer_size(daemon, request_, status)
    answered_bound = (kernel_send_buffer_max() + 2 * TWISTED_BUFFER) // size
    rss_before, answered_before = daemon.rss(), answered(daemon, status)
    sock = socket.socket()
    # Small buffers on the client's side, so that what the kernel holds is
    # small beside the bounds.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.connect(daemon.host_port)
    try:
        sent = send_until_unread(sock, request_ * 1000, SENT_BOUND, daemon.host_port,
                                 Steady(lambda: answered(daemon, status)))
        assert sent is not None, f"llmedge still reads after {SENT_BOUND} bytes"
        grown = daemon.rss() - rss_before
        count = answered(daemon, status) - answered_before
        print(f"\n{sent} bytes ({sent // len(request_)} requests) sent before llmedge stopped reading; "
              f"{count:.0f} answered ({size} bytes each); RSS grew {grown / 2**20:.1f} MiB")
        assert grown < RSS_BOUND
        assert count < answered_bound
        assert_good(exchange(daemon, chat())[0])
        assert answered(daemon, status) - answered_before == count
    finally:
        sock.close()
