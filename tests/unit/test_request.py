"""
L{EdgeRequest}: the body limit enforced while reading, request ids, and
failures answered as JSON.
"""

import json

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from llmedge.web.request import LINGER_SECONDS
from tests.unit.support import Harness, parse_response, raw_request


@pytest.fixture
def edge():
    return Harness({"MAX_REQUEST_SIZE": "1000"})


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def head(path="/v1/chat/completions", **headers) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t", "Content-Type: application/json"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_413(raw: bytes):
    response = parse_response(raw)
    assert response.status == 413
    assert response.header("connection") == "close"
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"
    assert "1000 bytes" in error["message"]
    return response


def test_declared_length_over_the_limit_is_refused_before_the_body(edge):
    connection = edge.connect()
    connection.send(head(Content_Length=2 * 1024**3))
    assert_413(connection.transport.value())


class HalfClosingTransport(StringTransport):
    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


def test_refusal_half_closes_so_the_client_reads_the_413(edge):
    connection = edge.connect(HalfClosingTransport())
    connection.send(head(Content_Length=5000))
    assert connection.transport.write_closed
    assert not connection.transport.disconnecting


def test_refusal_aborts_the_connection_after_lingering(edge):
    connection = edge.connect(HalfClosingTransport())
    connection.send(head(Content_Length=5000))
    edge.reactor.advance(LINGER_SECONDS - 0.1)
    assert not connection.transport.disconnected
    edge.reactor.advance(0.1)
    assert connection.transport.disconnected


def test_transport_without_half_close_is_closed(edge):
    connection = edge.connect()
    connection.send(head(Content_Length=5000))
    assert connection.transport.disconnecting


def test_lingering_ends_when_the_client_closes(edge):
    connection = edge.connect(HalfClosingTransport())
    connection.send(head(Content_Length=5000))

    def lingering():
        abort = connection.transport.abortConnection
        return [c for c in edge.reactor.getDelayedCalls() if c.func == abort]

    assert len(lingering()) == 1
    connection.lose()
    assert lingering() == []


def test_body_sent_after_a_refusal_is_discarded_unanswered(edge):
    connection = edge.connect()
    connection.send(head(Content_Length=5000))
    answered = connection.transport.value()
    connection.send(b"x" * 5000)
    assert connection.transport.value() == answered


def test_expect_continue_is_not_granted_to_a_body_over_the_limit(edge):
    connection = edge.connect()
    connection.send(head(Content_Length=5000, Expect="100-continue"))
    raw = connection.transport.value()
    assert b"100 Continue" not in raw
    assert_413(raw)


def test_chunked_body_is_cut_off_at_the_first_chunk_past_the_limit(edge):
    connection = edge.connect()
    connection.send(head(Transfer_Encoding="chunked"))
    connection.send(chunk(b" " * 600))
    assert connection.transport.value() == b""
    connection.send(chunk(b" " * 600))
    assert_413(connection.transport.value())


def test_body_at_exactly_the_limit_is_accepted(edge):
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "x"}]})
    body = body.encode().ljust(1000)
    response = edge.request("POST", "/v1/chat/completions", body=body,
                            headers={"Content-Type": "application/json"})
    assert response.status == 200


def test_refusal_carries_the_clients_request_id(edge):
    connection = edge.connect()
    connection.send(head(Content_Length=5000, X_Request_Id="abc-123"))
    assert assert_413(connection.transport.value()).header("x-request-id") == "abc-123"


def test_sane_request_id_is_kept(edge):
    response = edge.request("GET", "/health", headers={"X-Request-Id": "client.id:42/a"})
    assert response.header("x-request-id") == "client.id:42/a"


@pytest.mark.parametrize("given", ["a" * 129, "has space", "tab\tin", "é"])
def test_insane_request_id_is_replaced(edge, given):
    connection = edge.connect()
    connection.send(raw_request("GET", "/health").replace(
        b"\r\n\r\n", b"\r\nX-Request-Id: " + given.encode() + b"\r\n\r\n"))
    chosen = connection.response().header("x-request-id")
    assert chosen.startswith("req_") and len(chosen) == 36


def test_request_ids_are_unique(edge):
    ids = {edge.request("GET", "/health").header("x-request-id") for _ in range(50)}
    assert len(ids) == 50


def test_unexpected_failure_is_a_json_500_without_details(edge):
    def broken(call, model):
        raise RuntimeError("secret internal detail")

    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = broken
    response = edge.request(
        "POST", "/v1/chat/completions",
        body={"model": "mock", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "secret" not in response.body.decode()


def asked_and_left(edge, work, cancelled):
    """
    A client that asks for a chat completion the provider answers with
    C{work}, still under way (nothing C{cancelled} yet), and leaves: what
    it was sent.
    """
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: work
    connection = edge.connect()
    connection.send(raw_request(
        "POST", "/v1/chat/completions",
        {"model": "mock", "messages": [{"role": "user", "content": "x"}]}))
    assert cancelled == []
    connection.lose()
    return connection.transport.value()


def test_disconnect_cancels_the_tracked_work(edge):
    cancelled = []
    pending = Deferred(lambda d: cancelled.append(True))
    assert asked_and_left(edge, pending, cancelled) == b""
    assert cancelled == [True]


def test_malformed_form_body_gets_json_415_not_a_bare_400(edge):
    response = edge.request(
        "POST", "/v1/chat/completions", body=b"--x\r\nnot a form",
        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_disconnect_cancels_work_waiting_on_a_deferred_it_fired_into(edge):
    cancelled = []
    inner = Deferred(lambda d: cancelled.append(True))
    outer = Deferred()
    outer.addCallback(lambda _: inner)  # called already, paused on inner
    outer.callback(None)
    asked_and_left(edge, outer, cancelled)
    assert cancelled == [True]
