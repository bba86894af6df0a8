"""
Errors a client can cause, over real sockets against the real daemon: each
is OpenAI error JSON with the right status, never HTML, never a traceback.
"""

import http.client
import json
import select
import socket
import subprocess


from tests.integration.conftest import API_KEY, require_tool

LIMIT = 65536  # the daemon fixture's MAX_REQUEST_SIZE


def request(daemon, method, path, body=None, headers=None):
    host, port = daemon.host_port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response, payload


def error_of(response, payload, status):
    assert response.status == status
    assert response.getheader("content-type") == "application/json"
    assert response.getheader("x-request-id")
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_unknown_path_is_404(daemon):
    error = error_of(*request(daemon, "GET", "/v1/nothing"), 404)
    assert error["code"] == "unknown_url"


def test_wrong_method_is_405_with_allow(daemon):
    response, payload = request(daemon, "GET", "/v1/chat/completions")
    error_of(response, payload, 405)
    assert response.getheader("allow") == "POST"


def test_not_json_is_415(daemon):
    response, payload = request(
        daemon, "POST", "/v1/chat/completions", body=b"model=mock",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    error_of(response, payload, 415)


def test_malformed_json_is_400(daemon):
    response, payload = request(
        daemon, "POST", "/v1/chat/completions", body=b'{"model": "mock",',
        headers={"Content-Type": "application/json"})
    assert error_of(response, payload, 400)["type"] == "invalid_request_error"


def test_missing_field_is_400_naming_it(daemon):
    response, payload = request(
        daemon, "POST", "/v1/chat/completions", body=b'{"model": "mock"}',
        headers={"Content-Type": "application/json"})
    assert error_of(response, payload, 400)["param"] == "messages"


def connect(daemon):
    sock = socket.create_connection(daemon.host_port, timeout=10)
    return sock


def read_until_closed(sock):
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    return status, headers, body[: int(headers[b"content-length"])]


def test_declared_2gb_body_is_refused_before_any_body_is_sent(daemon):
    sock = connect(daemon)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n")
    status, headers, body = parse(read_until_closed(sock))
    assert status == 413
    assert headers[b"connection"] == b"close"
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_expect_continue_over_the_limit_gets_413_not_100(daemon):
    sock = connect(daemon)
    sock.sendall(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
    raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 413 ")


def test_chunked_body_past_the_limit_is_cut_off(daemon):
    sock = connect(daemon)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b" " * 8192
    sent = 0
    while True:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
        assert sent < 50 * LIMIT, "no 413 after far more than the limit"
    status, _, body = parse(read_until_closed(sock))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_body_at_the_limit_is_accepted(daemon):
    body = json.dumps({"model": "mock", "input": "x", "dimensions": 4}).encode()
    body = body.ljust(LIMIT)
    response, payload = request(daemon, "POST", "/v1/embeddings", body=body,
                                headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert len(json.loads(payload)["data"][0]["embedding"]) == 4


def test_curl_upload_over_the_limit_reads_the_413(daemon, tmp_path):
    require_tool("curl")
    big = tmp_path / "big.json"
    big.write_bytes(b'{"model": "mock", "input": "' + b"x" * (4 * LIMIT) + b'"}')
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H",
         "Content-Type: application/json", "-H", f"Authorization: Bearer {API_KEY}",
         "--data-binary", f"@{big}",
         daemon.base_url + "/v1/embeddings"],
        capture_output=True, timeout=30, text=True)
    body, _, status = result.stdout.rpartition("\n")
    assert status == "413"
    assert json.loads(body)["error"]["code"] == "request_too_large"
