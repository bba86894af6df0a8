"""
Streaming responses: SSE framing, back-pressure from a slow client, and
cancellation when the client goes away mid-stream.
"""

import json

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from llmedge.errors import APIError
from llmedge.providers.base import IEventStream
from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture
def edge(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[providers.mock]\nkind = "mock"\nstream_interval = 0.1\n')
    return Harness(config_path=str(config))


def test_stream_is_framed_as_server_sent_events_ending_with_done(edge):
    response = edge.request("POST", "/v1/chat/completions", body=CHAT)
    assert response.status == 200
    assert response.header("content-type") == "text/event-stream; charset=utf-8"
    assert response.header("cache-control") == "no-cache"
    events = response.events()
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "You said: one two three"


def test_stream_body_is_only_data_lines_and_blank_lines(edge):
    body = edge.request("POST", "/v1/chat/completions", body=CHAT).body
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b""
    assert all(b.startswith(b"data: ") and b"\n" not in b for b in blocks[:-1])


def test_include_usage_adds_the_usage_chunk(edge):
    body = dict(CHAT, stream_options={"include_usage": True})
    events = edge.request("POST", "/v1/chat/completions", body=body).events()
    last = json.loads(events[-2])
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] > 0


def test_headers_are_sent_before_the_first_event(edge):
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    response = connection.response()
    assert response.status == 200
    assert response.header("x-request-id")
    assert response.events() == []


def test_legacy_completions_stream(edge):
    body = {"model": "mock", "prompt": "hi", "stream": True}
    events = edge.request("POST", "/v1/completions", body=body).events()
    assert events[-1] == b"[DONE]"
    assert json.loads(events[0])["object"] == "text_completion"


def stream_length(connection):
    return len(connection.transport.value())


def pump(edge, seconds):
    """
    Run the clock for C{seconds} in the stream's steps.
    """
    for _ in range(int(seconds / 0.1)):
        edge.reactor.advance(0.1)


def test_slow_client_pauses_the_provider(edge):
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    edge.reactor.advance(0.1)
    connection.transport.producer.pauseProducing()
    paused_at = stream_length(connection)
    pump(edge, 10)
    assert stream_length(connection) == paused_at
    connection.transport.producer.resumeProducing()
    pump(edge, 10)
    assert connection.response().events()[-1] == b"[DONE]"


def test_disconnect_mid_stream_stops_the_provider(edge):
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    edge.reactor.advance(0.1)
    assert edge.reactor.getDelayedCalls()
    connection.lose()
    # no stream timer, deadline timer or idle timeout is left behind
    assert edge.reactor.getDelayedCalls() == []
    written = stream_length(connection)
    pump(edge, 10)
    assert stream_length(connection) == written


@implementer(IEventStream)
class ScriptedStream:
    """
    A stream that sends given events, then ends as told.
    """

    def __init__(self, events, end):
        self.events, self.end = events, end

    def start(self, receiver):
        for e in self.events:
            receiver(e)
        return self.end

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


def scripted(edge, stream):
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: succeed(stream)
    return edge.request("POST", "/v1/chat/completions", body=CHAT)


def test_failure_after_the_stream_started_ends_it_with_an_error_event(edge):
    error = APIError(502, "upstream went away", type="server_error", code="upstream_error")
    response = scripted(edge, ScriptedStream([b'{"a":1}'], fail(error)))
    assert response.status == 200
    assert response.complete
    events = response.events()
    assert events[0] == b'{"a":1}'
    assert json.loads(events[-1])["error"]["code"] == "upstream_error"
    assert b"[DONE]" not in events


def test_unexpected_failure_mid_stream_hides_its_details(edge):
    response = scripted(edge, ScriptedStream([], fail(RuntimeError("kaboom-detail"))))
    assert json.loads(response.events()[-1])["error"]["type"] == "server_error"
    assert b"kaboom" not in response.body


def test_stream_that_never_ends_is_ended_by_the_deadline(edge):
    cancelled = []
    response = scripted(edge, ScriptedStream([b"{}"], Deferred(cancelled.append)))
    assert response.complete
    assert cancelled
    assert json.loads(response.events()[-1])["error"]["code"] == "timeout"
