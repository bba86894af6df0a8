"""
L{llmedge.web.head}: a plain head that arrived whole is read in one pass,
into the request Twisted's line parser would have made; anything else is
declined, and Twisted's parser decides it as before.
"""

import re

import pytest

from llmedge.web.head import whole_head
from tests.unit.support import Harness, parse_response
from tests.unit.test_channel import FillingTransport

SIZE, COUNT = 16384, 500


def head(data: bytes):
    line, _, rest = data.partition(b"\r\n")
    return whole_head(line, rest, SIZE, COUNT)


def test_a_plain_head_is_read_whole():
    read = head(b"POST /v1/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
                b"X-Pad:  v a \t\r\n\r\n{body}")
    assert read is not None
    assert (read.method, read.target, read.version) == (b"POST", b"/v1/x?a=1", b"HTTP/1.1")
    assert read.headers == [(b"Host", b"h"), (b"Content-Length", b"12"), (b"X-Pad", b"v a")]
    assert read.length == 12


def test_what_the_head_took_and_what_twisted_counts():
    data = b"GET / HTTP/1.0\r\nA: b\r\nC: d\r\n\r\nnext"
    line, _, rest = data.partition(b"\r\n")
    read = whole_head(line, rest, SIZE, COUNT)
    assert rest[read.used:] == b"next"
    assert read.size == len(b"GET / HTTP/1.0") + len(b"A: b") + len(b"C: d")
    assert read.length == 0


def test_a_head_without_headers_is_read_whole():
    read = head(b"GET /health HTTP/1.0\r\n\r\n")
    assert read is not None and read.headers == [] and read.used == 2


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: h\r\n",  # not whole yet
    b"GET / HTTP/1.1\r\nHost: h\r\n\r",
    b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n",  # two spaces
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",  # not a token
    b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost h\r\n\r\n",  # no colon
    b"GET / HTTP/1.1\r\n: h\r\n\r\n",  # no name
    b"GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nA&B: h\r\n\r\n",  # a token Twisted 24.7 refuses
    b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",  # a bare LF
    b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",  # a bare CR
    b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (COUNT + 1) + b"\r\n",
    b"GET / HTTP/1.1\r\nX: " + b"a" * SIZE + b"\r\n\r\n",
], ids=["partial", "partial-cr", "two-spaces", "version", "method", "target-del",
        "target-utf8", "no-colon", "no-name", "space-in-name", "ampersand", "folded",
        "bare-lf", "bare-cr", "nul", "chunked", "two-lengths", "signed-length",
        "header-count", "header-size"])
def test_anything_unusual_is_left_to_twisted(data):
    assert head(data) is None


# -- through the channel ------------------------------------------------------------

POST = (b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nX-Request-Id: abc\r\nContent-Length: %d\r\n\r\n")
BODY = b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}'


def answers(data: bytes, whole: bool) -> bytes:
    harness = Harness({"AUTH_ENABLED": "true", "API_KEYS": "k"})
    connection = harness.connect(FillingTransport(mark=2**20))
    if whole:
        connection.send(data)
    else:
        for byte in range(len(data)):  # never a whole head: line by line
            connection.send(data[byte:byte + 1])
    return connection.transport.value()


def without_dates(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n")
                        if not line.startswith((b"Date:", b"X-Request-Id:")) and b'"id"' not in line
                        and b"created" not in line)


def test_a_head_read_whole_is_answered_as_one_read_line_by_line():
    data = POST % len(BODY) + BODY
    one, lines = answers(data, True), answers(data, False)
    assert parse_response(one).status == 200
    assert parse_response(one).header("x-request-id") == "abc"
    assert parse_response(one).json()["choices"] == parse_response(lines).json()["choices"]
    assert without_dates(one).split(b"\r\n\r\n")[0] == without_dates(lines).split(b"\r\n\r\n")[0]


def test_pipelined_requests_read_whole_are_all_answered_in_order():
    data = (b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\n\r\n"
            + POST % len(BODY) + BODY
            + b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
    raw = answers(data, True)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", raw) == [b"200", b"200", b"401"]  # no key: 401


def test_a_body_that_follows_its_whole_head_later_is_still_read():
    harness = Harness({"AUTH_ENABLED": "true", "API_KEYS": "k"})
    connection = harness.connect()
    connection.send(POST % len(BODY))
    assert connection.transport.value() == b""
    connection.send(BODY)
    assert parse_response(connection.transport.value()).status == 200


def test_a_whole_head_without_host_is_still_refused():
    raw = answers(b"GET /health HTTP/1.1\r\nX: y\r\n\r\n", True)
    assert parse_response(raw).status == 400
    assert parse_response(raw).json()["error"]["code"] == "bad_request"


def test_a_whole_head_declaring_too_large_a_body_is_still_refused():
    raw = answers(POST % (10 ** 9), True)
    assert parse_response(raw).status == 413
