"""
The fake upstream's dialects beyond plain text, driven in memory: OpenAI's
Responses API, Anthropic's count_tokens, and the tool calls, reasoning and
stop sequences a request's words and fields ask for
(L{llmedge.testing.upstream_intent}).

Documents and events are checked against the installed SDKs' models, the
wire truth, as well as field by field.
"""

from __future__ import annotations

import json

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmedge.testing.upstream_intent import last_user_text, text_of, tool_to_call
from tests.unit.test_fake_upstream import START, Fake, chunks, named_events

RESPONSES = "/v1/responses"
COUNT = "/v1/messages/count_tokens"
CHAT_TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}},
              {"type": "function", "function": {"name": "other"}}]
RESPONSES_TOOLS = [{"type": "web_search"},
                   {"type": "function", "name": "lookup", "parameters": {}, "strict": True},
                   {"type": "function", "name": "other", "parameters": {}, "strict": True}]
MESSAGES_TOOLS = [{"name": "lookup", "input_schema": {"type": "object"}}, {"name": "other"}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
def fake():
    return Fake()


def respond(fake, model="gpt", **fields):
    body = {"model": model, "input": "hi", **fields}
    return fake.request("POST", RESPONSES, body)


def user(text):
    return [{"role": "user", "content": text}]


def valid_events(model, events):
    adapter = TypeAdapter(model)
    for _, data in events:
        adapter.validate_python(data)
    return events


# What a request's words ask for


def test_text_of_reads_strings_and_text_parts_of_every_dialect():
    content = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "input_text",
                                                                  "text": "b"}]
    assert (text_of("x"), text_of(content), text_of(None)) == ("x", "a b", "")


def test_the_last_user_message_is_the_one_read():
    messages = [{"role": "user", "content": "use tool"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "thanks"}]
    assert last_user_text(messages) == "thanks"
    assert last_user_text("bare input") == "bare input"


@pytest.mark.parametrize("answered", [
    {"role": "tool", "tool_call_id": "call_fake_1", "content": "42"},
    {"type": "function_call_output", "call_id": "call_fake_1", "output": "42"},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_fake_1"}]},
])
def test_a_tool_result_after_the_user_message_is_answered_not_the_words(answered):
    assert last_user_text([*user("use tool"), {"role": "assistant"}, answered]) == ""


@pytest.mark.parametrize("choice,text,called", [
    (None, "use tool", "a"),
    (None, "hello", None),
    ("auto", "use tool", "a"),
    ("none", "use tool", None),
    ({"type": "none"}, "use tool", None),
    ("required", "hello", "a"),
    ({"type": "any"}, "hello", "a"),
    ({"type": "tool", "name": "b"}, "hello", "b"),
    ({"type": "function", "name": "b"}, "hello", "b"),
    ({"type": "function", "function": {"name": "b"}}, "hello", "b"),
    ({"type": "tool", "name": "missing"}, "use tool", None),
])
def test_tool_choice_is_read_as_providers_read_it(choice, text, called):
    assert tool_to_call(["a", "b"], choice, text) == called


def test_no_tools_means_no_call_whatever_is_asked():
    assert tool_to_call([], "required", "use tool") is None


# The Responses API


def test_responses_answer_is_a_completed_response_from_the_native_endpoint(fake):
    response = respond(fake, "gpt+chunks=2")
    assert response.status == 200
    document = response.json()
    Response.model_validate(document)
    assert (document["id"], document["object"], document["status"], document["model"]) == (
        "resp_fake_1", "response", "completed", "gpt+chunks=2")
    assert document["created_at"] == START
    assert document["output"] == [{
        "id": "msg_fake_1", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Responses API: chunk0 chunk1",
                     "annotations": [], "logprobs": []}],
    }]


def test_responses_usage_counts_as_the_other_endpoints_with_details(fake):
    assert respond(fake, "gpt+chunks=3").json()["usage"] == {
        "input_tokens": 7, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10,
    }


def test_responses_echo_what_the_request_set(fake):
    document = respond(fake, instructions="be brief", max_output_tokens=50,
                       tools=RESPONSES_TOOLS[1:], tool_choice="auto").json()
    assert document["instructions"] == "be brief"
    assert document["max_output_tokens"] == 50
    assert document["tools"] == RESPONSES_TOOLS[1:]


def test_responses_stream_sends_the_typed_events_in_order(fake):
    response = respond(fake, "gpt+chunks=2", stream=True)
    assert response.header("content-type") == "text/event-stream; charset=utf-8"
    events = valid_events(ResponseStreamEvent, named_events(response.body))
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    assert all(data["type"] == name for name, data in events)
    assert b"[DONE]" not in response.body


def test_responses_stream_events_are_numbered_from_zero(fake):
    events = named_events(respond(fake, stream=True).body)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


def test_responses_stream_starts_in_progress_and_completes_with_the_whole_response(fake):
    events = named_events(respond(fake, "gpt+chunks=2", stream=True).body)
    created = events[0][1]["response"]
    assert (created["status"], created["output"], created["usage"]) == ("in_progress", [], None)
    assert events[2][1]["item"]["status"] == "in_progress"
    completed = events[-1][1]["response"]
    assert (completed["id"], completed["status"]) == ("resp_fake_1", "completed")
    assert completed["output"] == [events[-2][1]["item"]]
    assert completed["output"][0]["content"][0]["text"] == "Responses API: chunk0 chunk1"
    assert completed["usage"]["output_tokens"] == 2


def test_responses_stream_deltas_are_the_marker_then_the_pieces(fake):
    events = named_events(respond(fake, "gpt+chunks=2", stream=True).body)
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    assert deltas == ["Responses API: ", "chunk0", " chunk1"]
    done = dict(events)["response.output_text.done"]
    assert done["text"] == "".join(deltas)
    assert (done["item_id"], done["output_index"], done["content_index"]) == ("msg_fake_1", 0, 0)


def test_responses_errors_are_openai_errors(fake):
    response = respond(fake, "gpt+status=429+retry-after=3", stream=True)
    assert response.status == 429
    assert response.header("retry-after") == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_responses_wait_for_slow_headers(fake):
    connection = fake.send("POST", RESPONSES, {"model": "gpt+slow-headers=2", "input": "hi"})
    fake.clock.advance(1)
    assert connection.transport.value() == b""
    fake.clock.advance(1)
    assert connection.response().json()["status"] == "completed"


def test_responses_stream_garbage_is_one_event_that_is_not_json(fake):
    body = respond(fake, "gpt+garbage", stream=True).body
    assert body.split(b"\n\n")[1] == (
        b'event: response.output_text.delta\ndata: {"type": this is not JSON')


def test_responses_stream_reset_after_aborts_after_that_many_events(fake):
    connection = fake.send("POST", RESPONSES,
                           {"model": "gpt+reset-after=3", "input": "hi", "stream": True})
    fake.clock.advance(0)
    fake.clock.advance(0)
    assert connection.transport.disconnecting or connection.transport.disconnected
    assert fake.log()[0]["chunks_sent"] == 3


def test_responses_input_of_the_wrong_type_is_refused(fake):
    response = respond(fake, input=5)
    assert response.status == 400
    assert response.json()["error"]["param"] == "input"


def test_responses_call_the_first_function_tool_when_asked(fake):
    document = respond(fake, tools=RESPONSES_TOOLS, input=[
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "please use tool"}]}]).json()
    Response.model_validate(document)
    assert document["output"] == [{
        "id": "fc_fake_1", "type": "function_call", "status": "completed",
        "arguments": '{"x":1}', "call_id": "call_fake_1", "name": "lookup",
    }]


def test_responses_tools_alone_do_not_make_a_call(fake):
    document = respond(fake, tools=RESPONSES_TOOLS).json()
    assert document["output"][0]["type"] == "message"


def test_responses_stream_a_function_call_with_its_arguments_in_two_pieces(fake):
    events = valid_events(ResponseStreamEvent, named_events(
        respond(fake, tools=RESPONSES_TOOLS, input="use tool", stream=True).body))
    assert [name for name, _ in events][2:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]
    assert events[2][1]["item"] == {
        "id": "fc_fake_1", "type": "function_call", "status": "in_progress", "arguments": "",
        "call_id": "call_fake_1", "name": "lookup"}
    assert [events[3][1]["delta"], events[4][1]["delta"]] == ['{"x":', "1}"]
    assert events[5][1]["arguments"] == '{"x":1}'
    assert events[6][1]["item"]["arguments"] == '{"x":1}'


# Chat completions: tool calls and reasoning


def chat(fake, text, model="gpt", **fields):
    return fake.chat(model, messages=user(text), **fields)


def test_chat_calls_the_first_tool_when_asked(fake):
    document = chat(fake, "use tool", tools=CHAT_TOOLS).json()
    ChatCompletion.model_validate(document)
    [choice] = document["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant", "content": None, "refusal": None,
        "tool_calls": [{"id": "call_fake_1", "type": "function",
                        "function": {"name": "lookup", "arguments": '{"x":1}'}}],
    }


def test_chat_tools_alone_do_not_make_a_call(fake):
    document = chat(fake, "hi", tools=CHAT_TOOLS).json()
    assert document["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in document["choices"][0]["message"]


def test_chat_tool_choice_none_answers_in_text(fake):
    document = chat(fake, "use tool", tools=CHAT_TOOLS, tool_choice="none").json()
    assert document["choices"][0]["message"]["content"] == "chunk0 chunk1 chunk2 chunk3 chunk4"


def test_chat_answers_a_tool_result_in_text(fake):
    document = fake.chat("gpt", tools=CHAT_TOOLS, messages=[
        *user("use tool"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_fake_1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"x":1}'}}]},
        {"role": "tool", "tool_call_id": "call_fake_1", "content": "42"},
    ]).json()
    assert document["choices"][0]["finish_reason"] == "stop"


def test_chat_streams_a_tool_call_as_openai_does(fake):
    response = chat(fake, "use tool", tools=CHAT_TOOLS, stream=True)
    found = chunks(response)
    for chunk in found:
        ChatCompletionChunk.model_validate(chunk)
    assert [c["choices"][0]["delta"] for c in found] == [
        {"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": "call_fake_1", "type": "function",
            "function": {"name": "lookup", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {},
    ]
    assert found[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_think_adds_reasoning_content(fake):
    message = chat(fake, "think first", "gpt+chunks=1").json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Thinking about it.", "chunk0")


def test_chat_without_think_has_no_reasoning_content(fake):
    assert "reasoning_content" not in chat(fake, "hi").json()["choices"][0]["message"]


def test_chat_streams_reasoning_before_the_content(fake):
    found = chunks(chat(fake, "think", "gpt+chunks=1", stream=True))
    assert [c["choices"][0]["delta"] for c in found] == [
        {"role": "assistant", "content": ""}, {"reasoning_content": "Thinking about it."},
        {"content": "chunk0"}, {},
    ]


def test_chat_streams_reasoning_before_a_tool_call(fake):
    found = chunks(chat(fake, "think, then use tool", tools=CHAT_TOOLS, stream=True))
    deltas = [c["choices"][0]["delta"] for c in found]
    assert deltas[1] == {"reasoning_content": "Thinking about it."}
    assert deltas[2]["tool_calls"][0]["id"] == "call_fake_1"


# Anthropic Messages: thinking, tool choice, stop sequences


def messages(fake, text, model="claude", **fields):
    return fake.messages(model, messages=user(text), **fields)


def test_messages_think_when_thinking_is_enabled(fake):
    document = messages(fake, "think", "claude+chunks=1", thinking=THINKING).json()
    Message.model_validate(document)
    assert document["content"] == [
        {"type": "thinking", "thinking": "Thinking about it.", "signature": "sig-fake"},
        {"type": "text", "text": "chunk0"},
    ]


def test_messages_never_think_without_thinking_enabled(fake):
    document = messages(fake, "think", thinking={"type": "disabled"}).json()
    assert [block["type"] for block in document["content"]] == ["text"]


def test_messages_stream_thinking_as_its_own_block_before_the_text(fake):
    events = valid_events(RawMessageStreamEvent, [
        event for event in named_events(
            messages(fake, "think", "claude+chunks=1", thinking=THINKING, stream=True).body)
        if event[0] != "ping"])
    assert [(name, data.get("index")) for name, data in events][1:-2] == [
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
        ("content_block_stop", 1),
    ]
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "",
                                             "signature": ""}
    assert [events[2][1]["delta"], events[3][1]["delta"]] == [
        {"type": "thinking_delta", "thinking": "Thinking about it."},
        {"type": "signature_delta", "signature": "sig-fake"},
    ]


def test_messages_forced_tool_choice_calls_the_named_tool(fake):
    document = messages(fake, "hello", tools=MESSAGES_TOOLS,
                        tool_choice={"type": "tool", "name": "other"}).json()
    assert document["content"][0]["name"] == "other"
    assert document["stop_reason"] == "tool_use"


def test_messages_use_tool_with_auto_tool_choice_calls_the_first_tool(fake):
    document = messages(fake, "use tool", tools=MESSAGES_TOOLS,
                        tool_choice={"type": "auto", "disable_parallel_tool_use": True}).json()
    assert document["content"][0]["name"] == "lookup"


def test_messages_tool_choice_none_answers_in_text(fake):
    document = messages(fake, "use tool", tools=MESSAGES_TOOLS, tool_choice={"type": "none"})
    assert document.json()["stop_reason"] == "end_turn"


def test_messages_stop_at_the_first_stop_sequence_found(fake):
    document = messages(fake, "hi", stop_sequences=["chunk4", " chunk2", "absent"]).json()
    Message.model_validate(document)
    assert document["content"] == [{"type": "text", "text": "chunk0 chunk1"}]
    assert (document["stop_reason"], document["stop_sequence"]) == ("stop_sequence", " chunk2")
    assert document["usage"]["output_tokens"] == 2


def test_messages_stop_sequences_not_found_end_the_turn(fake):
    document = messages(fake, "hi", stop_sequences=["absent"]).json()
    assert (document["stop_reason"], document["stop_sequence"]) == ("end_turn", None)


def test_messages_stream_stops_mid_piece_at_a_stop_sequence(fake):
    events = named_events(messages(fake, "hi", stop_sequences=["k1"], stream=True).body)
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert deltas == ["chunk0", " chun"]
    assert dict(events)["message_delta"] == {
        "type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "k1"},
        "usage": {"output_tokens": 2},
    }


# Anthropic count_tokens


def count(fake, body=None, headers=None):
    body = body if body is not None else {"model": "claude", "messages": user("hi")}
    return fake.request("POST", COUNT, body, headers)


def test_count_tokens_answers_the_input_tokens_messages_would_report(fake):
    response = count(fake, {"model": "claude", "system": "be brief", "messages": user("hi")})
    assert response.status == 200
    assert response.json() == {"input_tokens": 7}
    assert response.json()["input_tokens"] == fake.messages().json()["usage"]["input_tokens"]


def test_count_tokens_is_logged_with_the_beta_header(fake):
    count(fake, headers={"anthropic-beta": "token-counting-2024-11-01"})
    [entry] = fake.log()
    assert (entry["path"], entry["model"], entry["anthropic_beta"]) == (
        COUNT, "claude", "token-counting-2024-11-01")
    assert entry["finished_at"] is not None


def test_count_tokens_needs_messages_but_no_max_tokens(fake):
    response = count(fake, {"model": "claude"})
    assert response.status == 400
    assert response.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages: Field required"}}


def test_count_tokens_misbehaves_as_the_model_name_asks(fake):
    response = count(fake, {"model": "claude+status=529", "messages": []})
    assert response.status == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_count_tokens_ignores_stream(fake):
    response = count(fake, {"model": "claude", "messages": [], "stream": True})
    assert json.loads(response.body) == {"input_tokens": 7}
