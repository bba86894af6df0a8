"""
Upstream plumbing: the relayed stream's back-pressure and ending, error
mapping, and what body goes upstream (SSE parsing: tests/unit/test_events.py).
"""

import json

import pytest
from twisted.internet import error as net
from twisted.internet.testing import StringTransport
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseNeverReceived

from llmedge.errors import APIError
from llmedge.providers.base import Call
from llmedge.providers.events import UpstreamStream
from llmedge.providers.openai import ChunkRelay, OpenAIProvider, error_from_openai
from llmedge.providers.client import ConnectionPool, HTTP11Client
from tests.unit.test_client import Reactor
from llmedge.providers.upstream import USER_AGENT, Bounds, Upstream
from llmedge.providers.upstream_errors import unreachable


class Transport:
    def __init__(self):
        self.paused = False
        self.stopped = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.stopped = True


class Response:
    """
    Stands in for an IResponse: hands its body protocol a fake transport.
    """

    def __init__(self):
        self.transport = Transport()
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.transport)


class UpstreamStreamTests(SynchronousTestCase):
    def stream(self, strip_usage=False):
        response = Response()
        stream = UpstreamStream("up", response, ChunkRelay(strip_usage))
        received = []
        done = stream.start(received.append)
        return response, stream, received, done

    def test_chunks_are_relayed_byte_for_byte(self):
        response, _, received, done = self.stream()
        chunk = b'{"choices": [{"delta": {"role": "assistant"}, "finish_reason": null}]}'
        response.protocol.dataReceived(b"data: " + chunk + b"\n\ndata: [DONE]\n\n")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(received, [chunk])
        self.successResultOf(done)

    def test_usage_chunk_llmedge_asked_for_is_held_back(self):
        response, stream, received, done = self.stream(strip_usage=True)
        usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        response.protocol.dataReceived(
            b'data: {"choices":[{"delta":{}}],"usage":null}\n\n'
            b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
            b"data: [DONE]\n\n")
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(len(received), 1)
        self.assertEqual(stream.usage, usage)

    def test_usage_chunk_the_client_asked_for_is_relayed(self):
        response, stream, received, _ = self.stream(strip_usage=False)
        response.protocol.dataReceived(b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n')
        self.assertEqual(len(received), 1)

    def test_stream_ending_without_done_is_broken(self):
        response, _, _, done = self.stream()
        response.protocol.dataReceived(b'data: {"choices":[]}\n\n')
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.failureResultOf(done).value.code, "upstream_stream_broken")

    def test_garbage_event_fails_the_stream_and_closes_upstream(self):
        response, _, received, done = self.stream()
        response.protocol.dataReceived(b"data: <html>oops</html>\n\n")
        self.assertTrue(response.transport.stopped)
        response.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.failureResultOf(done).value.code, "upstream_malformed_response")
        self.assertEqual(received, [])

    def test_stream_already_over_when_it_starts(self):
        class Complete(Response):
            def deliverBody(self, protocol):
                super().deliverBody(protocol)
                protocol.dataReceived(b"data: {}\n\ndata: [DONE]\n\n")
                protocol.connectionLost(Failure(ResponseDone()))

        received = []
        done = UpstreamStream("up", Complete(), ChunkRelay(False)).start(received.append)
        self.successResultOf(done)
        self.assertEqual(received, [b"{}"])

    def test_pause_and_resume_reach_the_upstream_socket(self):
        response, stream, _, _ = self.stream()
        stream.pauseProducing()
        self.assertTrue(response.transport.paused)
        stream.resumeProducing()
        self.assertFalse(response.transport.paused)

    def test_cancel_closes_the_upstream_connection(self):
        response, _, _, done = self.stream()
        done.cancel()
        self.assertTrue(response.transport.stopped)
        self.failureResultOf(done, CancelledError)
        response.protocol.connectionLost(Failure(net.ConnectionLost()))  # no second firing


@pytest.mark.parametrize(
    "status,body,expected_status,code",
    [
        (500, b'{"error": {"message": "boom", "type": "server_error"}}', 502, "upstream_error"),
        (503, b"<html>busy</html>", 503, "upstream_error"),
        (429, b'{"error": {"message": "slow down"}}', 429, "rate_limit_exceeded"),
        (401, b'{"error": {"message": "bad key sk-upstream"}}', 502, "upstream_auth_failed"),
        (400, b'{"error": {"message": "bad temp", "param": "temperature", "code": "x"}}',
         400, "x"),
        (404, b"not json", 502, "upstream_error"),
    ],
)
def test_upstream_errors_map_to_client_errors(status, body, expected_status, code):
    error = error_from_openai("up", status, body, [(b"Retry-After", b"7")])
    assert (error.status, error.code) == (expected_status, code)
    assert b"<html>" not in error.body()
    assert b"sk-upstream" not in error.body()


def test_upstream_429_keeps_retry_after():
    error = error_from_openai("up", 429, b"{}", [(b"Retry-After", b"7")])
    assert (b"Retry-After", b"7") in error.headers
    assert error.retryable


def test_an_error_body_not_read_leaves_the_status_to_speak():
    error = error_from_openai("up", 400, None)
    assert (error.status, error.code) == (502, "upstream_error")
    assert "status 400" in error.message


@pytest.mark.parametrize("field,value", [
    ("type", {"nested": True}), ("param", ["a"]), ("code", 7), ("type", "t" * 101),
])
def test_upstream_error_fields_that_are_not_sane_strings_are_dropped(field, value):
    body = json.dumps({"error": {"message": "bad", field: value}}).encode()
    error = error_from_openai("up", 400, body)
    assert json.loads(error.body())["error"][field] in (None, "invalid_request_error")


def test_a_long_upstream_message_is_cut():
    body = json.dumps({"error": {"message": "m" * 5000}}).encode()
    assert len(error_from_openai("up", 400, body).message) <= 1001


@pytest.mark.parametrize(
    "reason,words",
    [
        (net.ConnectionRefusedError(), "connection refused"),
        (net.DNSLookupError("x"), "does not resolve"),
        (ResponseNeverReceived([Failure(net.ConnectionLost())]), "closed before a response"),
    ],
)
def test_unreachable_names_the_provider_and_a_short_cause(reason, words):
    error = unreachable("local", Failure(reason))
    assert error.status == 502
    assert "'local'" in error.message and words in error.message


def provider():
    return OpenAIProvider(Upstream("up", None, None, None, 60.0), "http://127.0.0.1:1/v1", "sk-up")


def test_body_is_forwarded_as_received_when_nothing_changes():
    raw = b'{"model": "m",  "messages": [], "future_field": 1}'
    call = Call("chat.completions", json.loads(raw), raw)
    assert provider()._body(call, "m") == (raw, False)


def test_model_is_renamed_for_the_upstream():
    call = Call("chat.completions", {"model": "public", "messages": []}, b"{}")
    body, _ = provider()._body(call, "upstream-name")
    assert json.loads(body)["model"] == "upstream-name"


def test_streams_ask_for_usage_when_the_client_did_not():
    call = Call("chat.completions", {"model": "m", "messages": [], "stream": True}, b"{}")
    body, strip = provider()._body(call, "m")
    assert json.loads(body)["stream_options"] == {"include_usage": True}
    assert strip


def test_client_asking_for_usage_gets_it_relayed():
    document = {"model": "m", "messages": [], "stream": True,
                "stream_options": {"include_usage": True}}
    raw = json.dumps(document).encode()
    assert provider()._body(Call("chat.completions", document, raw), "m") == (raw, False)


def test_upstream_headers_are_relayed_unless_llmedge_set_its_own():
    from twisted.web.test.requesthelper import DummyRequest

    from llmedge.web.sse import relay_headers

    request = DummyRequest([b""])
    request.setHeader(b"x-ratelimit-remaining-requests", b"99")
    relay_headers(request, [(b"x-ratelimit-remaining-requests", b"4999"),
                            (b"x-ratelimit-remaining-tokens", b"150000")])
    assert request.responseHeaders.getRawHeaders(b"x-ratelimit-remaining-requests") == [b"99"]
    assert request.responseHeaders.getRawHeaders(b"x-ratelimit-remaining-tokens") == [b"150000"]


class Wire:
    """
    An L{Upstream} over the real HTTP client, its socket a L{StringTransport}.
    """

    def __init__(self, first_byte=60.0, bounds=Bounds(), headers=None):
        self.reactor = Reactor()
        self.pool = ConnectionPool(self.reactor, idle_timeout=240.0)
        client = HTTP11Client(self.reactor, self.pool, 5.0)
        self.upstream = Upstream("up", client, self.reactor,
                                 {"X-Api-Key": "sk-up"} if headers is None else headers,
                                 first_byte, bounds)

    def post(self, body=b"{}", headers=None):
        """
        POST on a new connection, or the one idle in the pool.
        """
        if headers is None:
            headers = {"x-request-id": "r1"}
        connections = len(self.reactor.tcpClients)
        d = self.upstream.post(b"http://example.com/v1/messages", headers, body)
        if len(self.reactor.tcpClients) > connections:
            _, _, factory, _, _ = self.reactor.tcpClients[-1]
            self.protocol = factory.buildProtocol(None)
            self.transport = StringTransport()
            self.protocol.makeConnection(self.transport)
        return d

    def sent_headers(self):
        """
        The header lines of the last request sent, in order.
        """
        head = self.transport.value().split(b"\r\n\r\n")[-2].split(b"\r\n")
        return head[1:]

    def timers(self):
        """
        When the timers still pending are due, but for the pool's idle one.
        """
        idle = self.pool._timer
        return [call.getTime() for call in self.reactor.getDelayedCalls() if call is not idle]


def test_post_sends_the_provider_and_call_headers():
    wire = Wire()
    wire.post(b'{"m":1}')
    head = wire.transport.value().split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/messages HTTP/1.1"
    assert set(head[1:]) == {b"Host: example.com", b"User-Agent: " + USER_AGENT,
                             b"Content-Type: application/json", b"X-Api-Key: sk-up",
                             b"X-Request-Id: r1", b"Content-Length: 7"}


def test_provider_headers_go_with_every_request_and_follow_a_change():
    wire = Wire()
    wire.post()
    wire.protocol.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
    wire.upstream.set_header(b"x-api-key", b"sk-new")
    wire.transport.clear()
    wire.post()
    assert b"X-Api-Key: sk-new" in wire.sent_headers()
    assert b"X-Api-Key: sk-up" not in wire.sent_headers()


def test_a_call_header_wins_over_the_provider_s_of_the_same_name():
    wire = Wire(headers={"Anthropic-Version": "2023-06-01"})
    wire.post(headers={"anthropic-version": "2099-01-01", "x-request-id": "r1"})
    lines = wire.sent_headers()
    assert [line for line in lines if line.startswith(b"Anthropic-Version")] == [
        b"Anthropic-Version: 2099-01-01"]
    assert b"User-Agent: " + USER_AGENT in lines


def test_the_provider_s_header_is_back_for_a_call_without_its_own():
    wire = Wire(headers={"Anthropic-Version": "2023-06-01"})
    wire.post(headers={"anthropic-version": "2099-01-01"})
    wire.protocol.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
    wire.transport.clear()
    wire.post(headers={"x-request-id": "r2"})
    assert b"Anthropic-Version: 2023-06-01" in wire.sent_headers()


def test_configured_headers_may_replace_the_user_agent():
    wire = Wire(headers={"User-Agent": "mine/1"})
    wire.post()
    agents = [line for line in wire.sent_headers() if line.startswith(b"User-Agent")]
    assert agents == [b"User-Agent: mine/1"]


def test_the_provider_headers_are_changed_only_through_set_header():
    upstream = Wire().upstream
    assert upstream.headers[b"x-api-key"] == b"sk-up"
    with pytest.raises(TypeError):
        upstream.headers[b"x-api-key"] = b"sk-other"


def test_a_configured_header_the_client_writes_itself_fails_without_connecting():
    wire = Wire(headers={"Host": "elsewhere"})
    d = wire.upstream.post(b"http://example.com/v1/messages", {}, b"{}")
    error = d.result.value
    d.addErrback(lambda _: None)
    assert (error.status, error.code) == (502, "upstream_unreachable")
    assert wire.reactor.tcpClients == []
    assert wire.timers() == []


def test_the_first_byte_timer_stops_when_the_head_arrives():
    wire = Wire(first_byte=5.0)
    d = wire.post()
    assert wire.timers() == [wire.reactor.seconds() + 5.0]
    wire.protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    assert wire.timers() == []
    wire.reactor.advance(5)
    assert d.result.code == 200
    assert not wire.transport.disconnecting


@pytest.mark.parametrize("end", ["lost", "cancelled"])
def test_the_first_byte_timer_stops_when_the_request_fails(end):
    wire = Wire(first_byte=5.0)
    d = wire.post()
    if end == "lost":
        wire.protocol.connectionLost(Failure(net.ConnectionLost()))
    else:
        d.cancel()
    assert wire.timers() == []
    d.addErrback(lambda _: None)


def test_post_without_a_first_byte_in_time_is_a_504_and_closes():
    wire = Wire(first_byte=5.0)
    d = wire.post()
    wire.reactor.advance(5)
    error = d.result.value
    d.addErrback(lambda _: None)
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert wire.transport.disconnected


def test_post_to_an_upstream_closing_without_answer_is_a_502():
    wire = Wire()
    d = wire.post()
    wire.protocol.connectionLost(Failure(net.ConnectionLost()))
    error = d.result.value
    d.addErrback(lambda _: None)
    assert (error.status, error.code) == (502, "upstream_unreachable")
    assert "closed before a response" in error.message


def test_cancelled_post_fails_with_cancelled_error():
    wire = Wire()
    d = wire.post()
    d.cancel()
    assert d.result.check(CancelledError)
    d.addErrback(lambda _: None)
    assert wire.transport.disconnected


def answered(body, complete=True, bounds=Bounds()):
    wire = Wire(bounds=bounds)
    d = wire.post()
    wire.protocol.dataReceived(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        + (body if complete else body[:-1]))
    return wire, wire.upstream.read_json(d.result)


def test_json_answer_is_read_at_once():
    _, read = answered(b'{"id": "x"}')
    assert read.result == (b'{"id": "x"}', {"id": "x"})


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[1, 2]"])
def test_answer_that_is_not_a_json_object_is_a_502(body):
    _, read = answered(body)
    assert read.result.value.code == "upstream_malformed_response"
    read.addErrback(lambda _: None)


def test_truncated_answer_is_a_502():
    wire, read = answered(b'{"id": "x"}', complete=False)
    assert not read.called
    wire.protocol.connectionLost(Failure(net.ConnectionLost()))
    assert read.result.value.status == 502
    read.addErrback(lambda _: None)


def test_an_answer_over_the_bound_is_too_large_and_its_connection_dropped():
    wire, read = answered(b'{"id": "%s"}' % (b"x" * 2000), complete=False,
                          bounds=Bounds(response=1024))
    assert (read.result.value.status, read.result.value.code) == (
        502, "upstream_response_too_large")
    read.addErrback(lambda _: None)
    assert wire.transport.disconnected or wire.transport.disconnecting


def test_a_whole_answer_over_the_bound_is_too_large_its_connection_kept():
    wire, read = answered(b'{"id": "%s"}' % (b"x" * 2000), bounds=Bounds(response=1024))
    assert read.result.value.code == "upstream_response_too_large"
    read.addErrback(lambda _: None)
    assert not wire.transport.disconnecting  # all read: the connection is fine


def error_answer(body, bounds=Bounds(error=1024)):
    wire = Wire(bounds=bounds)
    d = wire.post()
    wire.protocol.dataReceived(
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n"
        % (len(body), body))
    return wire, wire.upstream.read_error(d.result)


def test_an_error_body_is_read_within_its_bound():
    _, read = error_answer(b'{"error": {"message": "x"}}')
    assert not read.called  # the chunked body has not ended yet


def test_an_error_body_over_its_bound_is_dropped_with_its_connection():
    wire, read = error_answer(b"e" * 2000)
    assert read.result is None
    assert wire.transport.disconnected or wire.transport.disconnecting


def test_a_non_json_answer_to_a_stream_request_is_malformed_and_closed():
    wire = Wire()
    up = OpenAIProvider(wire.upstream, "http://example.com/v1", None)
    call = Call("chat.completions", {"model": "m", "messages": [], "stream": True}, b"{}")
    d = up.chat_completion(call, "m")
    _, _, factory, _, _ = wire.reactor.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                          b"Content-Length: 100\r\n\r\n<html>")
    error = d.result.value
    d.addErrback(lambda _: None)
    assert (error.status, error.code, error.retryable) == (
        502, "upstream_malformed_response", True)
    assert transport.disconnected or transport.disconnecting


@pytest.mark.parametrize("body,code", [
    (b'{"error": {"message": "quota exhausted"}}', "upstream_error"),
    (b'{"id": "x", "object": "chat.completion"}', "upstream_malformed_response"),
])
def test_a_200_that_is_not_an_answer_is_a_502(body, code):
    wire = Wire()
    up = OpenAIProvider(wire.upstream, "http://example.com/v1", None)
    d = up.chat_completion(Call("chat.completions", {"model": "m", "messages": []}, b"{}"), "m")
    _, _, factory, _, _ = wire.reactor.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    error = d.result.value
    d.addErrback(lambda _: None)
    assert (error.status, error.code, error.retryable) == (502, code, True)



def test_with_json_goes_on_at_once_for_an_answer_already_here():
    wire = Wire()
    d = wire.post()
    wire.protocol.dataReceived(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"id": "x"}')
    went_on = wire.upstream.with_json(d.result, lambda read, tag: (tag, read), "t")
    assert went_on == ("t", (b'{"id": "x"}', {"id": "x"}))


def test_with_json_goes_on_once_the_rest_of_the_answer_came():
    wire = Wire()
    d = wire.post()
    wire.protocol.dataReceived(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"id"')
    went_on = wire.upstream.with_json(d.result, lambda read, tag: (tag, read), "t")
    assert not went_on.called
    wire.protocol.dataReceived(b': "x"}')
    assert went_on.result == ("t", (b'{"id": "x"}', {"id": "x"}))


def test_with_json_refuses_an_answer_already_here_that_is_not_json():
    wire = Wire()
    d = wire.post()
    wire.protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>")
    with pytest.raises(APIError) as raised:
        wire.upstream.with_json(d.result, lambda read: read)
    assert raised.value.code == "upstream_malformed_response"


def test_with_json_refuses_an_answer_over_the_bound():
    wire = Wire(bounds=Bounds(response=5))
    d = wire.post()
    wire.protocol.dataReceived(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"id": "x"}')
    went_on = wire.upstream.with_json(d.result, lambda read: read)
    assert went_on.result.value.code == "upstream_response_too_large"
    went_on.addErrback(lambda _: None)
