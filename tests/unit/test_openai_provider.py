"""
The C{openai} provider over the real HTTP client, its socket in memory:
what goes upstream for each kind of request, what each kind of answer
becomes, and that cancelling a call at any point closes its connection.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.testing import StringTransport

from llmedge.dialects.reply import IReplyStream, Reply
from llmedge.errors import APIError
from llmedge.providers.base import CHAT, EMBEDDINGS, RESPONSES, Answer, Call
from llmedge.providers.chunks import ReplayStream
from llmedge.providers.client import ConnectionPool, HTTP11Client
from llmedge.providers.events import UpstreamStream
from llmedge.providers.openai import OpenAIProvider
from llmedge.providers.upstream import Upstream
from llmedge.testing.hostile_wire import (
    chat_chunk,
    chat_completion,
    dumps,
    embedding_list,
    error,
    response,
    sse,
)
from tests.unit.test_client import Reactor

RATE = [(b"X-RateLimit-Remaining-Requests", b"4999"), (b"Server", b"up/1")]
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class ProviderWire:
    """
    A provider on an L{Upstream} over the real client, on a fake reactor;
    the upstream end of its connection is a L{StringTransport}.
    """

    def __init__(self, make, first_byte=60.0):
        self.reactor = Reactor()
        self.pool = ConnectionPool(self.reactor)
        client = HTTP11Client(self.reactor, self.pool, 5.0)
        self.provider = make(Upstream("up", client, self.reactor, {}, first_byte))
        self.transport = None

    def call(self, method, endpoint, body, raw=None, model="m", client_headers=None):
        """
        Call the provider; the connection it opens, if any, is accepted.
        """
        if raw is None:
            raw = json.dumps(body).encode()
        call = Call(endpoint, body, raw, "r1", {"x-request-id": "r1"}, client_headers or {})
        connections = len(self.reactor.tcpClients)
        d = getattr(self.provider, method)(call, model)
        if len(self.reactor.tcpClients) > connections:
            _, _, factory, _, _ = self.reactor.tcpClients[-1]
            self.protocol = factory.buildProtocol(None)
            self.transport = StringTransport()
            self.protocol.makeConnection(self.transport)
        return d

    def answer(self, data):
        self.protocol.dataReceived(data)

    def sent(self):
        """
        The request line, header lines and body of the request sent.
        """
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        return lines[0], lines[1:], body

    @property
    def closed(self):
        return self.transport.disconnecting or self.transport.disconnected


def openai(responses=False):
    return ProviderWire(lambda up: OpenAIProvider(up, "http://example.com/v1", "sk-up",
                                                  responses=responses))


def failure_of(d):
    failures = []
    d.addErrback(failures.append)
    assert failures, f"{d!r} did not fail"
    return failures[0]


def json_answer(document, headers=RATE, status=200):
    return response(status, [*headers, (b"Content-Type", b"application/json")], dumps(document))


def test_a_chat_completion_goes_as_it_came_with_the_provider_key():
    wire = openai()
    raw = b'{"model": "m", "messages": [], "unknown": 1}'
    wire.call("chat_completion", CHAT, json.loads(raw), raw)
    line, headers, body = wire.sent()
    assert line == b"POST /v1/chat/completions HTTP/1.1"
    assert b"Authorization: Bearer sk-up" in headers
    assert b"X-Request-Id: r1" in headers
    assert body == raw


def test_a_chat_completion_answer_is_relayed_byte_for_byte_with_its_rate_limits():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    payload = dumps(chat_completion())
    wire.answer(response(200, RATE, payload))
    answer = d.result
    assert isinstance(answer, Answer)
    assert answer.body == payload
    assert answer.usage == chat_completion()["usage"]
    assert answer.headers == ((b"x-ratelimit-remaining-requests", b"4999"),)


def test_an_upstream_error_answer_becomes_the_client_s_error():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    wire.answer(json_answer(error("bad temperature", param="temperature"), status=400))
    reason = failure_of(d)
    assert isinstance(reason.value, APIError)
    assert (reason.value.status, reason.value.message) == (400, "bad temperature")
    assert not reason.value.retryable


def test_a_429_keeps_the_upstream_s_wait():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    wire.answer(json_answer(error("slow down"), [(b"Retry-After", b"7")], status=429))
    error_ = failure_of(d).value
    assert (error_.status, error_.retryable) == (429, True)
    assert (b"Retry-After", b"7") in error_.headers


def test_an_event_stream_answer_is_relayed_as_a_stream():
    wire = openai()
    d = wire.call("chat_completion", CHAT, {**CHAT_BODY, "stream": True})
    wire.answer(response(200, [*RATE, (b"Content-Type", b"text/event-stream")],
                         sse(chat_chunk({"content": "hi"}), "[DONE]"), framing="chunked"))
    stream = d.result
    assert isinstance(stream, UpstreamStream)
    assert stream.headers == ((b"x-ratelimit-remaining-requests", b"4999"),)
    received = []
    stream.start(received.append)
    assert json.loads(received[0])["choices"][0]["delta"] == {"content": "hi"}


def test_a_stream_request_answered_in_one_piece_is_replayed_as_a_stream():
    wire = openai()
    d = wire.call("chat_completion", CHAT, {**CHAT_BODY, "stream": True})
    wire.answer(json_answer(chat_completion()))
    stream = d.result
    assert isinstance(stream, ReplayStream)
    assert stream.headers == ((b"x-ratelimit-remaining-requests", b"4999"),)


def test_an_embeddings_answer_without_data_is_malformed():
    wire = openai()
    d = wire.call("embedding", EMBEDDINGS, {"model": "m", "input": "hi"})
    wire.answer(json_answer(chat_completion()))
    assert failure_of(d).value.code == "upstream_malformed_response"


def test_an_embeddings_answer_is_relayed():
    wire = openai()
    d = wire.call("embedding", EMBEDDINGS, {"model": "m", "input": "hi"})
    wire.answer(json_answer(embedding_list()))
    assert wire.sent()[0] == b"POST /v1/embeddings HTTP/1.1"
    assert json.loads(d.result.body) == embedding_list()


def test_another_dialect_is_sent_as_a_chat_request_and_its_answer_decoded():
    wire = openai()
    d = wire.call("responses", RESPONSES, {"model": "m", "input": "hi"})
    line, _, body = wire.sent()
    assert line == b"POST /v1/chat/completions HTTP/1.1"
    assert json.loads(body)["messages"] == [{"role": "user", "content": "hi"}]
    wire.answer(json_answer(chat_completion("Hello.")))
    reply = d.result
    assert isinstance(reply, Reply)
    assert [part.text for part in reply.parts] == ["Hello."]


def test_another_dialect_s_stream_answered_in_one_piece_is_replayed():
    wire = openai()
    d = wire.call("responses", RESPONSES, {"model": "m", "input": "hi", "stream": True})
    wire.answer(json_answer(chat_completion()))
    assert IReplyStream.providedBy(d.result)


def test_another_dialect_s_stream_is_translated_as_it_comes():
    wire = openai()
    d = wire.call("responses", RESPONSES, {"model": "m", "input": "hi", "stream": True})
    wire.answer(response(200, [(b"Content-Type", b"text/event-stream")],
                         sse(chat_chunk({"content": "hi"}), "[DONE]"), framing="chunked"))
    assert isinstance(d.result, UpstreamStream)
    assert IReplyStream.providedBy(d.result)


def test_a_chat_answer_that_is_not_one_fails_a_translated_request():
    wire = openai()
    d = wire.call("responses", RESPONSES, {"model": "m", "input": "hi"})
    wire.answer(json_answer({"choices": "none"}))
    assert failure_of(d).value.code == "upstream_malformed_response"


def test_what_a_translation_cannot_carry_fails_the_call_before_anything_is_sent():
    wire = openai()
    d = wire.call("responses", RESPONSES,
                  {"model": "m", "input": "hi", "previous_response_id": "resp_1"})
    reason = failure_of(d)
    assert reason.value.status == 400
    assert wire.reactor.tcpClients == []


def test_responses_pass_through_to_a_server_serving_them():
    wire = openai(responses=True)
    raw = b'{"model": "m", "input": "hi", "store": false}'
    d = wire.call("responses", RESPONSES, json.loads(raw), raw)
    line, _, body = wire.sent()
    assert (line, body) == (b"POST /v1/responses HTTP/1.1", raw)
    payload = dumps({"object": "response", "output": [],
                     "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}})
    wire.answer(response(200, RATE, payload))
    assert d.result.body == payload
    assert d.result.usage["total_tokens"] == 3


@pytest.mark.parametrize("document,stream,code", [
    ({"object": "chat.completion"}, False, "upstream_malformed_response"),
    ({"object": "response", "output": []}, True, "upstream_malformed_response"),
])
def test_a_passed_through_responses_answer_that_is_not_one_fails(document, stream, code):
    wire = openai(responses=True)
    d = wire.call("responses", RESPONSES, {"model": "m", "input": "hi", "stream": stream})
    wire.answer(json_answer(document))
    assert failure_of(d).value.code == code


def test_cancelling_before_the_head_closes_the_connection():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert wire.closed


def test_cancelling_while_the_answer_is_read_closes_the_connection():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    wire.answer(response(200, RATE, dumps(chat_completion()))[:-5])
    assert not d.called
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert wire.closed


def test_an_answer_leaves_its_connection_in_the_pool_and_no_timer_running():
    wire = openai()
    d = wire.call("chat_completion", CHAT, CHAT_BODY)
    wire.answer(json_answer(chat_completion()))
    assert isinstance(d.result, Answer)
    assert not wire.closed
    assert wire.reactor.getDelayedCalls() == [wire.pool._timer]
