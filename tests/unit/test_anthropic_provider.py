"""
The C{anthropic} provider over the real HTTP client, its socket in memory:
Messages requests passed through with the client's version headers, other
dialects translated, errors told as Anthropic's SDKs expect them, and
cancelling a call at any point closing its connection.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import CancelledError

from llmedge.dialects.reply import IReplyStream, Reply
from llmedge.providers.anthropic import AnthropicProvider
from llmedge.providers.base import CHAT, COMPLETIONS, COUNT_TOKENS, MESSAGES, Answer
from llmedge.providers.events import UpstreamStream
from llmedge.providers.upstream_errors import DEPLOYMENT, HOST, RATE_LIMIT
from llmedge.testing.hostile_wire import anthropic_events, anthropic_message, dumps, response, sse
from tests.unit.test_openai_provider import ProviderWire, failure_of

RATE = [(b"Anthropic-Ratelimit-Requests-Remaining", b"49"), (b"Server", b"up/1")]
MESSAGES_BODY = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def anthropic():
    return ProviderWire(lambda up: AnthropicProvider(up, "http://example.com", "sk-ant",
                                                     version="2023-06-01"))


def json_answer(document, headers=RATE, status=200):
    return response(status, [*headers, (b"Content-Type", b"application/json")], dumps(document))


def test_a_messages_request_goes_as_it_came_with_the_provider_key():
    wire = anthropic()
    raw = b'{"model": "m", "max_tokens": 10, "messages": [], "future": 1}'
    wire.call("messages", MESSAGES, json.loads(raw), raw)
    line, headers, body = wire.sent()
    assert (line, body) == (b"POST /v1/messages HTTP/1.1", raw)
    assert b"X-Api-Key: sk-ant" in headers
    assert b"Anthropic-Version: 2023-06-01" in headers


def test_the_client_s_version_headers_replace_the_provider_s():
    wire = anthropic()
    wire.call("messages", MESSAGES, MESSAGES_BODY,
              client_headers={"anthropic-version": "2099-01-01", "anthropic-beta": "b1",
                              "x-other": "no"})
    _, headers, _ = wire.sent()
    assert [h for h in headers if h.lower().startswith(b"anthropic-")] == [
        b"Anthropic-Version: 2099-01-01", b"Anthropic-Beta: b1"]
    assert not any(h.lower().startswith(b"x-other") for h in headers)


def test_a_message_answer_is_relayed_byte_for_byte_with_its_usage_and_rate_limits():
    wire = anthropic()
    d = wire.call("messages", MESSAGES, MESSAGES_BODY)
    payload = dumps(anthropic_message())
    wire.answer(response(200, RATE, payload))
    answer = d.result
    assert isinstance(answer, Answer)
    assert answer.body == payload
    assert answer.usage["prompt_tokens"] == anthropic_message()["usage"]["input_tokens"]
    assert answer.headers == ((b"anthropic-ratelimit-requests-remaining", b"49"),)


def test_an_answer_that_is_not_a_message_is_malformed():
    wire = anthropic()
    d = wire.call("messages", MESSAGES, MESSAGES_BODY)
    wire.answer(json_answer({"type": "completion"}))
    assert failure_of(d).value.code == "upstream_malformed_response"


def test_a_token_count_goes_to_its_endpoint_and_is_relayed():
    wire = anthropic()
    d = wire.call("count_tokens", COUNT_TOKENS, {"model": "m", "messages": []})
    wire.answer(json_answer({"input_tokens": 12}))
    assert wire.sent()[0] == b"POST /v1/messages/count_tokens HTTP/1.1"
    assert (json.loads(d.result.body), d.result.usage) == ({"input_tokens": 12}, None)


def test_a_token_count_without_input_tokens_is_malformed():
    wire = anthropic()
    d = wire.call("count_tokens", COUNT_TOKENS, {"model": "m", "messages": []})
    wire.answer(json_answer({"tokens": 12}))
    assert failure_of(d).value.code == "upstream_malformed_response"


def test_a_stream_is_passed_through_as_it_comes():
    wire = anthropic()
    d = wire.call("messages", MESSAGES, {**MESSAGES_BODY, "stream": True})
    wire.answer(response(200, [*RATE, (b"Content-Type", b"text/event-stream")],
                         sse(*anthropic_events()), framing="chunked"))
    stream = d.result
    assert isinstance(stream, UpstreamStream)
    assert stream.headers == ((b"anthropic-ratelimit-requests-remaining", b"49"),)


def test_a_stream_request_answered_in_one_piece_is_malformed():
    wire = anthropic()
    d = wire.call("messages", MESSAGES, {**MESSAGES_BODY, "stream": True})
    wire.answer(json_answer(anthropic_message()))
    error = failure_of(d).value
    assert error.code == "upstream_malformed_response"
    assert "not a stream" in error.message


@pytest.mark.parametrize("status,retryable,scope", [
    (429, True, RATE_LIMIT), (401, True, HOST), (529, True, DEPLOYMENT), (400, False, DEPLOYMENT),
])
def test_an_error_answer_is_told_as_anthropic_s_sdks_expect(status, retryable, scope):
    wire = anthropic()
    d = wire.call("messages", MESSAGES, MESSAGES_BODY)
    wire.answer(json_answer({"type": "error", "error": {"type": "x", "message": "no"}},
                            [(b"Retry-After", b"17")], status=status))
    error = failure_of(d).value
    assert (error.retryable, error.scope, error.provider) == (retryable, scope, "up")
    if status == 429:
        assert (b"Retry-After", b"17") in error.headers


def test_another_dialect_is_sent_as_a_messages_request_and_its_answer_decoded():
    wire = anthropic()
    d = wire.call("chat_completion", CHAT,
                  {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    line, _, body = wire.sent()
    assert line == b"POST /v1/messages HTTP/1.1"
    assert json.loads(body)["messages"][0]["role"] == "user"
    wire.answer(json_answer(anthropic_message("Hello.")))
    reply = d.result
    assert isinstance(reply, Reply)
    assert [part.text for part in reply.parts] == ["Hello."]


def test_another_dialect_s_stream_answered_in_one_piece_is_replayed():
    wire = anthropic()
    d = wire.call("chat_completion", CHAT,
                  {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "stream": True})
    wire.answer(json_answer(anthropic_message()))
    assert IReplyStream.providedBy(d.result)


def test_a_message_that_cannot_be_decoded_fails_a_translated_request():
    wire = anthropic()
    d = wire.call("chat_completion", CHAT,
                  {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    wire.answer(json_answer({"type": "completion", "completion": "nope"}))
    assert failure_of(d).value.code == "upstream_malformed_response"


def test_completions_are_the_client_s_error_and_nothing_is_sent():
    wire = anthropic()
    d = wire.call("completion", COMPLETIONS, {"model": "m", "prompt": "hi"})
    error = failure_of(d).value
    assert (error.status, error.retryable) == (400, False)
    assert wire.reactor.tcpClients == []


def test_cancelling_while_the_answer_is_read_closes_the_connection():
    wire = anthropic()
    d = wire.call("messages", MESSAGES, MESSAGES_BODY)
    wire.answer(response(200, RATE, dumps(anthropic_message()))[:-5])
    assert not d.called
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert wire.closed
