"""
The fake upstream (L{llmedge.testing.upstream}), driven in memory: its
option language, both wire formats, its misbehaviour on request and as
changed at run time, its back-pressure and its record of what it saw, with
time on a L{Clock}.
"""

import base64
import json
import struct

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from llmedge.testing.upstream import OPTIONS, BadOption, Behaviour, build_site, parse_model
from tests.unit.support import Connection, raw_request

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
START = 1_800_000_000


class Fake:
    """
    The fake upstream's site on a fake clock, with in-memory connections.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.site = build_site(self.clock)

    def send(self, method, path, body=None, headers=None) -> Connection:
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        connection = Connection(protocol, transport)
        connection.send(raw_request(method, path, body, headers))
        return connection

    def request(self, method, path, body=None, headers=None):
        connection = self.send(method, path, body, headers)
        self.clock.advance(0)
        return connection.response()

    def chat(self, model="fake", **fields):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}
        return self.request("POST", CHAT, body)

    def messages(self, model="claude", **fields):
        body = {"model": model, "max_tokens": 100,
                "messages": [{"role": "user", "content": "hi"}], **fields}
        return self.request("POST", MESSAGES, body)

    def log(self):
        return self.request("GET", "/_fake/log").json()

    def run(self, seconds: int) -> None:
        """
        Let C{seconds} pass one at a time: L{Clock.advance} moves the time
        before it runs the calls that were due, so one big step would run a
        paced stream's calls late and schedule the next ones from the end.
        """
        for _ in range(seconds):
            self.clock.advance(1)


@pytest.fixture
def fake():
    return Fake()


def chunks(response):
    events = response.events()
    assert events[-1] == b"[DONE]"
    return [json.loads(e) for e in events[:-1]]


def named_events(body: bytes):
    """
    An Anthropic stream as (event name, data) pairs.
    """
    found = []
    for block in body.split(b"\n\n"):
        if not block:
            continue
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        found.append((name[7:].decode(), json.loads(data[6:])))
    return found


def stream_body(model, **fields):
    return {"model": model, "stream": True, "messages": [], **fields}


# The option language


def test_a_plain_model_name_asks_for_the_default_behaviour():
    assert parse_model("gpt-4o") == ("gpt-4o", Behaviour())


def test_every_option_is_parsed():
    base, behaviour = parse_model(
        "fake+chunks=3+interval=0.1+slow-headers=2+slow-first=1.5+status=429"
        "+retry-after=7+html+garbage+reset-after=4+hang+size=100+oversize+fail-first=2"
        "+name=east-1"
    )
    assert base == "fake"
    assert behaviour == Behaviour(
        chunks=3, interval=0.1, slow_headers=2.0, slow_first=1.5, status=429,
        retry_after="7", html=True, garbage=True, reset_after=4, hang=True, size=100,
        oversize=True, fail_first=2, name="east-1",
    )
    assert set(OPTIONS) == {
        "chunks", "interval", "slow-headers", "slow-first", "status", "retry-after",
        "html", "garbage", "reset-after", "hang", "size", "oversize", "fail-first", "name",
    }


@pytest.mark.parametrize("model", [
    "fake+bogus", "fake+chunks", "fake+chunks=-1", "fake+chunks=x", "fake+interval=-1",
    "fake+status=200", "fake+status=600", "fake+html=1", "fake+size=0", "fake+",
    "fake+oversize=1", "fake+oversize+status=500", "fake+fail-first=-1", "fake+fail-first",
    "fake+name=", "fake+name=a/b", "fake+name=" + "x" * 101,
])
def test_bad_options_are_refused(model):
    with pytest.raises(BadOption):
        parse_model(model)


def test_oversize_is_a_429():
    assert parse_model("fake+oversize")[1].status == 429


def test_size_pads_each_piece():
    behaviour = Behaviour(chunks=2, size=10)
    assert behaviour.piece(0) == "chunk0...."
    assert behaviour.piece(1) == " chunk1..."
    assert behaviour.text() == "chunk0.... chunk1..."


def test_an_unknown_option_is_a_400_in_the_openai_shape(fake):
    response = fake.chat("fake+bogus")
    assert response.status == 400
    error = response.json()["error"]
    assert "bogus" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"


def test_an_unknown_option_is_a_400_in_the_anthropic_shape(fake):
    response = fake.messages("claude+bogus")
    assert response.status == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


# OpenAI


def test_chat_answer_is_deterministic_and_echoes_the_model(fake):
    response = fake.chat("fake+chunks=3")
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    document = response.json()
    assert document["id"] == "chatcmpl-fake-1"
    assert document["object"] == "chat.completion"
    assert document["model"] == "fake+chunks=3"
    assert document["created"] == START
    assert document["choices"] == [{
        "index": 0,
        "message": {"role": "assistant", "content": "chunk0 chunk1 chunk2", "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }]
    assert document["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_responses_carry_rate_limit_headers_and_echo_the_request_id(fake):
    response = fake.request("POST", CHAT, {"model": "fake"}, {"x-request-id": "req-42"})
    assert response.header("x-ratelimit-limit-requests") == "5000"
    assert response.header("x-ratelimit-remaining-requests") == "4999"
    assert response.header("x-request-id") == "req-42"


def test_no_request_id_is_made_up(fake):
    assert fake.chat().header("x-request-id") is None


def test_chat_stream_is_one_chunk_per_word(fake):
    response = fake.request("POST", CHAT, stream_body("fake+chunks=3"))
    assert response.header("content-type") == "text/event-stream; charset=utf-8"
    assert response.complete
    found = chunks(response)
    assert [c["choices"][0]["delta"] for c in found] == [
        {"role": "assistant", "content": ""},
        {"content": "chunk0"}, {"content": " chunk1"}, {"content": " chunk2"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in found] == [None] * 4 + ["stop"]
    assert {c["id"] for c in found} == {"chatcmpl-fake-1"}
    assert {c["model"] for c in found} == {"fake+chunks=3"}
    assert all("usage" not in c for c in found)


def test_include_usage_adds_null_usage_everywhere_and_a_last_usage_chunk(fake):
    body = stream_body("fake+chunks=2", stream_options={"include_usage": True})
    found = chunks(fake.request("POST", CHAT, body))
    assert all(c["usage"] is None for c in found[:-1])
    assert found[-1]["choices"] == []
    assert found[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert found[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_interval_paces_the_events_on_the_clock(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+chunks=2+interval=1"))
    fake.clock.advance(0)
    assert connection.response().status == 200
    assert len(connection.response().events()) == 1
    fake.clock.advance(1)
    assert len(connection.response().events()) == 2
    fake.clock.advance(1)
    assert len(connection.response().events()) == 3
    fake.clock.advance(1)
    response = connection.response()
    assert response.events()[-2:] == [response.events()[-2], b"[DONE]"]
    assert response.complete


def test_slow_headers_sends_nothing_until_the_time_has_passed(fake):
    connection = fake.send("POST", CHAT, {"model": "fake+slow-headers=5"})
    fake.clock.advance(4.9)
    assert connection.transport.value() == b""
    fake.clock.advance(0.1)
    assert connection.response().json()["choices"][0]["message"]["content"]


def test_slow_first_sends_headers_at_once_and_the_first_event_later(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+slow-first=3"))
    fake.clock.advance(2.9)
    response = connection.response()
    assert response.status == 200 and response.events() == []
    fake.clock.advance(0.1)
    assert connection.response().complete


def test_status_answers_an_openai_error(fake):
    response = fake.chat("fake+status=429")
    assert response.status == 429
    assert response.header("content-type") == "application/json"
    assert response.header("retry-after") is None
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_status_on_a_stream_is_answered_before_any_event(fake):
    response = fake.request("POST", CHAT, stream_body("fake+status=500"))
    assert response.status == 500
    assert response.json()["error"]["type"] == "server_error"


def test_retry_after_is_sent_with_the_error(fake):
    response = fake.chat("fake+status=503+retry-after=3")
    assert response.status == 503
    assert response.header("retry-after") == "3"


def test_html_sends_a_page_instead_of_json(fake):
    response = fake.chat("fake+status=502+html")
    assert response.status == 502
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.body.startswith(b"<html>")
    assert b"502 Bad Gateway" in response.body


def test_garbage_sends_a_body_that_is_not_json(fake):
    response = fake.chat("fake+garbage")
    assert response.status == 200
    with pytest.raises(ValueError):
        response.json()


def test_garbage_in_a_stream_is_one_data_line_that_is_not_json(fake):
    events = fake.request("POST", CHAT, stream_body("fake+garbage+chunks=2")).events()
    json.loads(events[0])
    with pytest.raises(ValueError):
        json.loads(events[1])
    assert [json.loads(e) for e in events[2:-1]]
    assert events[-1] == b"[DONE]"


def test_reset_after_aborts_the_connection_after_that_many_events(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+chunks=5+reset-after=2"))
    fake.clock.advance(0)
    assert len(connection.response().events()) == 2
    assert connection.transport.disconnected
    assert not connection.response().complete


def test_reset_after_on_a_plain_request_aborts_without_answering(fake):
    connection = fake.send("POST", CHAT, {"model": "fake+reset-after=0"})
    fake.clock.advance(0)
    assert connection.transport.value() == b""
    assert connection.transport.disconnected


def test_hang_never_answers(fake):
    connection = fake.send("POST", CHAT, {"model": "fake+hang"})
    fake.clock.advance(3600)
    assert connection.transport.value() == b""
    assert not connection.transport.disconnecting


def test_completions_answer_and_stream(fake):
    document = fake.request("POST", "/v1/completions", {"model": "fake+chunks=2"}).json()
    assert document["object"] == "text_completion"
    assert document["id"] == "cmpl-fake-1"
    assert document["choices"][0]["text"] == "chunk0 chunk1"
    body = {"model": "fake+chunks=2", "stream": True, "stream_options": {"include_usage": True}}
    found = chunks(fake.request("POST", "/v1/completions", body))
    assert [c["choices"][0]["text"] for c in found[:-1]] == ["chunk0", " chunk1", ""]
    assert found[-1]["choices"] == [] and found[-1]["usage"]["completion_tokens"] == 2


def test_embeddings_are_float_lists(fake):
    body = {"model": "fake-embedding", "input": ["a", "b"], "dimensions": 3}
    document = fake.request("POST", "/v1/embeddings", body).json()
    assert document["object"] == "list"
    assert [d["embedding"] for d in document["data"]] == [[0, 0.125, 0.25], [1, 1.125, 1.25]]
    assert [d["index"] for d in document["data"]] == [0, 1]


def test_embeddings_in_base64_are_little_endian_float32(fake):
    body = {"model": "fake-embedding", "input": "a", "encoding_format": "base64"}
    document = fake.request("POST", "/v1/embeddings", body).json()
    raw = base64.b64decode(document["data"][0]["embedding"])
    assert struct.unpack("<8f", raw) == tuple(j / 8 for j in range(8))


def test_embeddings_without_input_are_refused(fake):
    response = fake.request("POST", "/v1/embeddings", {"model": "fake-embedding"})
    assert response.status == 400
    assert response.json()["error"]["param"] == "input"


def test_models_are_listed_and_any_model_exists(fake):
    listed = fake.request("GET", "/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["fake", "fake-embedding"]
    assert fake.request("GET", "/v1/models/anything").json()["id"] == "anything"


def test_unknown_paths_and_methods_are_openai_errors(fake):
    missing = fake.request("POST", "/v1/nothing", {"model": "fake"})
    assert missing.status == 404
    assert "Unknown request URL" in missing.json()["error"]["message"]
    wrong = fake.request("GET", CHAT)
    assert wrong.status == 405
    assert wrong.header("allow") == "POST"


# Anthropic


def test_messages_answer_in_anthropic_shape(fake):
    document = fake.messages("claude+chunks=2").json()
    assert document == {
        "id": "msg_fake_1",
        "type": "message",
        "role": "assistant",
        "model": "claude+chunks=2",
        "content": [{"type": "text", "text": "chunk0 chunk1"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 2},
    }


def test_messages_without_max_tokens_are_refused_as_anthropic_does(fake):
    body = {"model": "claude", "messages": []}
    response = fake.request("POST", MESSAGES, body)
    assert response.status == 400
    assert response.json()["error"]["message"] == "max_tokens: Field required"


def test_messages_stream_follows_anthropics_event_sequence(fake):
    response = fake.messages("claude+chunks=2", stream=True)
    assert response.header("content-type") == "text/event-stream; charset=utf-8"
    events = named_events(response.body)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["usage"] == {"input_tokens": 7, "output_tokens": 1}
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert [e[1]["delta"] for e in events[3:5]] == [
        {"type": "text_delta", "text": "chunk0"}, {"type": "text_delta", "text": " chunk1"},
    ]
    assert events[6][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    }
    assert b"[DONE]" not in response.body


TOOLS = [{"name": "lookup", "input_schema": {"type": "object"}}, {"name": "other"}]


def test_messages_use_the_first_tool_when_asked(fake):
    document = fake.messages(
        tools=TOOLS, messages=[{"role": "user", "content": [{"type": "text", "text": "use tool"}]}]
    ).json()
    assert document["content"] == [
        {"type": "tool_use", "id": "toolu_fake_1", "name": "lookup", "input": {"x": 1}}
    ]
    assert document["stop_reason"] == "tool_use"


def test_tools_alone_do_not_make_a_tool_call(fake):
    document = fake.messages(tools=TOOLS).json()
    assert document["content"][0]["type"] == "text"


def test_tool_use_streams_its_input_as_json_pieces(fake):
    response = fake.messages(
        stream=True, tools=TOOLS, messages=[{"role": "user", "content": "please use tool"}]
    )
    events = named_events(response.body)
    assert events[1][1]["content_block"] == {
        "type": "tool_use", "id": "toolu_fake_1", "name": "lookup", "input": {}
    }
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert deltas == [
        {"type": "input_json_delta", "partial_json": '{"x":'},
        {"type": "input_json_delta", "partial_json": "1}"},
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_errors_use_anthropics_shape(fake):
    response = fake.messages("claude+status=529")
    assert response.status == 529
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error",
                  "message": "fake upstream: status 529, as the model name asked"},
    }


def test_oversize_is_openais_request_too_large_for_the_tokens_per_minute(fake):
    response = fake.chat("fake+oversize")
    assert response.status == 429
    assert response.header("content-type") == "application/json"
    assert response.json() == {"error": {
        "message": "Request too large for gpt-4o in organization org-fake on tokens per min "
                   "(TPM): Limit 30000, Requested 50000. The input or output tokens must be "
                   "reduced in order to run successfully.",
        "type": "tokens", "param": None, "code": "rate_limit_exceeded",
    }}


def test_oversize_on_messages_is_a_429_in_the_anthropic_shape(fake):
    response = fake.messages("claude+oversize")
    assert response.status == 429
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["error"]["message"].startswith("Request too large for gpt-4o")


def test_fail_first_fails_that_many_requests_with_503_then_answers(fake):
    statuses = [fake.chat("fake+fail-first=2").status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


def test_fail_first_fails_with_the_status_and_headers_asked(fake):
    first = fake.chat("fake+fail-first=1+status=429+retry-after=3")
    assert (first.status, first.header("retry-after")) == (429, "3")
    later = fake.chat("fake+fail-first=1+status=429+retry-after=3")
    assert (later.status, later.header("retry-after")) == (200, None)


def test_fail_first_with_oversize_fails_with_the_oversize_429(fake):
    first = fake.chat("fake+fail-first=1+oversize")
    assert first.status == 429 and first.json()["error"]["type"] == "tokens"
    assert fake.chat("fake+fail-first=1+oversize").status == 200


def test_fail_first_counts_each_model_string_apart(fake):
    assert fake.chat("fake+fail-first=1").status == 503
    assert fake.chat("fake+fail-first=1+chunks=2").status == 503
    assert fake.chat("fake+fail-first=1").status == 200


def test_fail_first_counts_a_names_requests_whatever_their_model_string(fake):
    assert fake.chat("fake+name=east+fail-first=1").status == 503
    assert fake.chat("fake+name=east+fail-first=1+chunks=2").status == 200
    assert fake.chat("fake+name=west+fail-first=1").status == 503


def test_reset_starts_the_fail_first_counts_over(fake):
    assert fake.chat("fake+fail-first=1").status == 503
    assert fake.chat("fake+fail-first=1").status == 200
    fake.request("POST", "/_fake/reset")
    assert fake.chat("fake+fail-first=1").status == 503


# Run-time behaviour


def behave(fake, name, options):
    return fake.request("POST", "/_fake/behave", {"name": name, "options": options})


def test_behave_answers_what_it_set(fake):
    response = behave(fake, "east", "slow-headers=0.3")
    assert response.status == 200
    assert response.json() == {"name": "east", "options": "slow-headers=0.3"}


def test_options_set_for_a_name_apply_to_its_models(fake):
    behave(fake, "east", "status=500")
    assert fake.chat("fake+name=east").status == 500
    assert fake.chat("fake+name=east+chunks=2").status == 500


def test_options_set_for_a_name_leave_other_models_alone(fake):
    behave(fake, "east", "status=500")
    assert fake.chat("fake+name=west").status == 200
    assert fake.chat("fake").status == 200


def test_run_time_options_are_added_to_the_model_names(fake):
    behave(fake, "east", "slow-headers=5")
    connection = fake.send("POST", CHAT, {"model": "fake+name=east+chunks=2"})
    fake.clock.advance(4.9)
    assert connection.transport.value() == b""
    fake.clock.advance(0.1)
    assert connection.response().json()["choices"][0]["message"]["content"] == "chunk0 chunk1"


def test_run_time_options_win_over_the_model_names(fake):
    behave(fake, "east", "chunks=3")
    document = fake.chat("fake+name=east+chunks=2").json()
    assert document["choices"][0]["message"]["content"] == "chunk0 chunk1 chunk2"


def test_empty_options_clear_what_was_set(fake):
    behave(fake, "east", "status=500")
    behave(fake, "east", "")
    assert fake.chat("fake+name=east").status == 200


def test_setting_options_for_a_name_starts_its_fail_first_count_over(fake):
    assert fake.chat("fake+name=east+fail-first=1").status == 503
    assert fake.chat("fake+name=east+fail-first=1").status == 200
    behave(fake, "east", "chunks=2")
    assert fake.chat("fake+name=east+fail-first=1").status == 503
    assert fake.chat("fake+name=east+fail-first=1").status == 200


def test_fail_first_can_be_set_at_run_time(fake):
    assert fake.chat("fake+name=east").status == 200
    behave(fake, "east", "fail-first=2+status=502")
    statuses = [fake.chat("fake+name=east").status for _ in range(3)]
    assert statuses == [502, 502, 200]


def test_a_request_is_answered_as_things_stood_when_it_came(fake):
    behave(fake, "east", "slow-headers=5")
    connection = fake.send("POST", CHAT, {"model": "fake+name=east"})
    fake.clock.advance(1)
    behave(fake, "east", "")
    assert fake.chat("fake+name=east").status == 200
    assert connection.transport.value() == b""
    fake.clock.advance(4)
    assert connection.response().status == 200


@pytest.mark.parametrize("body,said", [
    ({"name": "east", "options": "bogus"}, "unknown option 'bogus'"),
    ({"name": "east", "options": "chunks=x"}, "bad value 'x' for option 'chunks'"),
    ({"name": "east", "options": "name=west"}, "belongs in the model name"),
    ({"name": "east", "options": "oversize+status=500"}, "'oversize' is a 429"),
    ({"name": "a+b", "options": ""}, "bad name 'a+b'"),
    ({"name": "east"}, "behave needs"),
    ({"name": "east", "options": 3}, "both strings"),
])
def test_bad_run_time_options_are_refused_and_change_nothing(fake, body, said):
    behave(fake, "east", "chunks=1")
    response = fake.request("POST", "/_fake/behave", body)
    assert response.status == 400
    assert said in response.json()["error"]
    assert fake.chat("fake+name=east").json()["choices"][0]["message"]["content"] == "chunk0"


def test_run_time_options_stay_across_a_reset(fake):
    behave(fake, "east", "status=500")
    fake.request("POST", "/_fake/reset")
    assert fake.chat("fake+name=east").status == 500


# Back-pressure


def test_a_paused_stream_writes_nothing_until_resumed(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+chunks=3+interval=1"))
    fake.clock.advance(0)
    assert len(connection.response().events()) == 1
    connection.transport.producer.pauseProducing()
    fake.run(10)
    assert len(connection.response().events()) == 1
    connection.transport.producer.resumeProducing()
    fake.clock.advance(1)
    assert len(connection.response().events()) == 2


def test_a_transport_that_pauses_on_write_stops_a_fast_stream(fake):
    class Pausing(StringTransport):
        """
        A transport whose buffer is full once the second word is in it.
        """

        def write(self, data):
            super().write(data)
            if b"chunk1" in data:
                self.producer.pauseProducing()

        def writeSequence(self, data):
            self.write(b"".join(data))

    protocol = fake.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = Pausing()
    protocol.makeConnection(transport)
    connection = Connection(protocol, transport)
    connection.send(raw_request("POST", CHAT, stream_body("fake+chunks=100+size=1000")))
    fake.clock.advance(0)
    assert len(connection.response().events()) == 3
    assert fake.log()[0]["chunks_sent"] == 3


# The log


def test_the_log_records_what_was_sent(fake):
    headers = {
        "Authorization": "Bearer sk-up", "x-api-key": "ak", "anthropic-version": "2023-06-01",
        "anthropic-beta": "token-counting-2024-11-01",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-request-id": "req-1",
    }
    fake.clock.advance(2)
    fake.request("POST", CHAT, {"model": "fake", "messages": []}, headers)
    [entry] = fake.log()
    assert entry == {
        "n": 1, "method": "POST", "path": CHAT, "model": "fake",
        "authorization": "Bearer sk-up", "x_api_key": "ak", "anthropic_version": "2023-06-01",
        "anthropic_beta": "token-counting-2024-11-01", "traceparent": headers["traceparent"], "x_request_id": "req-1",
        "body": {"model": "fake", "messages": []},
        "received_at": START + 2, "finished_at": START + 2, "disconnected_at": None,
        "chunks_sent": 0,
    }


def test_the_log_keeps_the_model_string_as_received(fake):
    fake.request("POST", "/_fake/behave", {"name": "east", "options": "status=500"})
    fake.chat("fake+name=east+chunks=2")
    fake.chat("fake+fail-first=1")
    assert [entry["model"] for entry in fake.log()] == [
        "fake+name=east+chunks=2", "fake+fail-first=1"]


def test_the_log_keeps_missing_headers_and_bad_bodies_as_null(fake):
    fake.request("POST", CHAT, b"not json")
    [entry] = fake.log()
    assert entry["authorization"] is None and entry["body"] is None and entry["model"] is None


def test_the_log_counts_chunks_and_records_when_the_stream_finished(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+chunks=2+interval=1"))
    fake.clock.advance(0)
    assert fake.log()[0]["chunks_sent"] == 1
    fake.run(5)
    assert connection.response().complete
    [entry] = fake.log()
    assert entry["chunks_sent"] == 4
    assert entry["finished_at"] == START + 3
    assert entry["disconnected_at"] is None


def test_the_log_records_a_disconnect_mid_stream_and_the_stream_stops(fake):
    connection = fake.send("POST", CHAT, stream_body("fake+chunks=5+interval=1"))
    fake.clock.advance(0)
    fake.run(1)
    connection.lose()
    fake.run(3)
    [entry] = fake.log()
    assert entry["disconnected_at"] == START + 1
    assert entry["finished_at"] is None
    assert entry["chunks_sent"] == 2
    assert not [c for c in fake.clock.getDelayedCalls() if c.func.__name__ == "_run"]


def test_a_disconnect_while_hanging_is_recorded(fake):
    connection = fake.send("POST", CHAT, {"model": "fake+hang"})
    fake.clock.advance(7)
    connection.lose()
    assert fake.log()[0]["disconnected_at"] == START + 7


def test_the_fake_endpoints_are_not_logged_and_reset_clears(fake):
    fake.chat()
    fake.chat()
    assert [e["n"] for e in fake.log()] == [1, 2]
    assert fake.request("POST", "/_fake/reset").json() == {"cleared": 2}
    assert fake.log() == []
    assert fake.chat().json()["id"] == "chatcmpl-fake-3"


def test_wait_answers_when_the_request_ends(fake):
    connection = fake.send("POST", CHAT, {"model": "fake+hang"})
    waiting = fake.send("GET", "/_fake/wait?n=1&field=disconnected_at&timeout=30")
    fake.clock.advance(1)
    assert waiting.transport.value() == b""
    connection.lose()
    response = waiting.response()
    assert response.status == 200
    assert response.json()["disconnected_at"] == START + 1


def test_wait_times_out_on_the_clock(fake):
    fake.send("POST", CHAT, {"model": "fake+hang"})
    waiting = fake.send("GET", "/_fake/wait?n=1&field=finished_at&timeout=5")
    fake.clock.advance(5)
    assert waiting.response().status == 408


def test_a_waiter_that_goes_away_is_forgotten(fake):
    fake.send("POST", CHAT, {"model": "fake+hang"})
    waiting = fake.send("GET", "/_fake/wait?n=1&field=finished_at&timeout=5")
    waiting.lose()
    assert fake.site.fake_log._waiters == []
    fake.clock.advance(5)
    assert waiting.transport.value() == b""
