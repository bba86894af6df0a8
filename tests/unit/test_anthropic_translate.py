# -*- test-case-name: tests.unit.test_anthropic_translate -*-
"""
Translation between OpenAI's chat completions and Anthropic's Messages API,
as the composition of two codecs of llmedge's internal representation:
requests decoded by L{llmedge.dialects.chat} and encoded by
L{llmedge.dialects.messages}; answers and streams decoded by
L{llmedge.dialects.messages_reply} and encoded by
L{llmedge.dialects.chat_reply}; errors mapped by
L{llmedge.dialects.messages_errors}. Each test is a regression
specification of the whole translation, whichever codec carries it.
"""

from __future__ import annotations

import json

import pytest

from llmedge.dialects import chat, chat_reply, messages, messages_reply
from llmedge.dialects.conversation import Conversation
from llmedge.dialects.messages_errors import error_from_anthropic
from llmedge.errors import APIError


def to_messages_request(body: dict, model: str, default_max_tokens: int = 4096) -> dict:
    """
    A chat completions body as the Messages request sent to C{model}:
    decoded, refused if it asks what a translation cannot carry (as the
    Anthropic provider does between the codecs), then encoded.
    """
    conversation = chat.decode_request(body)
    conversation.refuse_unsupported()
    return messages.encode_request(conversation, model, default_max_tokens)


def to_chat_completion(message: dict, model: str, created: int) -> dict:
    """
    An Anthropic message as the chat completion a client of C{model} gets.
    """
    reply = messages_reply.decode_reply(message)
    return chat_reply.encode_reply(reply, Conversation(model=model, turns=[]), created)


class StreamTranslator:
    """
    Anthropic stream events as chat chunks (the decoded JSON of each
    C{data:} line), through a decoder and an encoder.
    """

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self._decoder = messages_reply.StreamDecoder()
        conversation = Conversation(model=model, turns=[], include_usage=include_usage)
        self._encoder = chat_reply.StreamEncoder(conversation, created)

    @property
    def usage(self) -> dict | None:
        return self._decoder.usage

    def feed(self, event_type: str, data: dict) -> list[dict]:
        sent = b"".join(
            self._encoder.encode(event) for event in self._decoder.feed(event_type, data)
        )
        return [
            json.loads(line.removeprefix(b"data: "))
            for line in sent.split(b"\n")
            if line.startswith(b"data: ") and line != b"data: [DONE]"
        ]


HELLO = [{"role": "user", "content": "Hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _request(**body):
    body.setdefault("messages", HELLO)
    return to_messages_request({"model": "public", **body}, "claude-up")


def _refusal(**body):
    with pytest.raises(APIError) as caught:
        _request(**body)
    assert caught.value.status == 400
    return caught.value


# Requests


def test_request_names_the_upstream_model_and_keeps_string_content():
    assert _request() == {
        "model": "claude-up",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_system_and_developer_messages_join_into_top_level_system():
    request = _request(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Answer in French."},
    ])
    assert request["system"] == "Be brief.\n\nBe kind.\n\nAnswer in French."
    assert request["messages"] == [{"role": "user", "content": "Hi"}]


def test_request_without_system_messages_has_no_system():
    assert "system" not in _request()


def test_consecutive_same_role_messages_merge_into_one_turn():
    request = _request(messages=[
        {"role": "user", "content": "One"},
        {"role": "user", "content": [{"type": "text", "text": "Two"}]},
        {"role": "assistant", "content": "Three"},
    ])
    assert request["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "One"}, {"type": "text", "text": "Two"},
        ]},
        {"role": "assistant", "content": "Three"},
    ]


def test_conversation_may_start_with_assistant():
    messages = [{"role": "assistant", "content": "Hi"}, *HELLO]
    assert [t["role"] for t in _request(messages=messages)["messages"]] == [
        "assistant", "user",
    ]


def test_only_system_messages_are_refused():
    error = _refusal(messages=[{"role": "system", "content": "Be brief."}])
    assert error.param == "messages"


def test_text_parts_become_text_blocks():
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert _request(messages=[{"role": "user", "content": content}])["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"},
        ]},
    ]


def test_data_url_image_becomes_base64_image_block():
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}
    blocks = _request(messages=[{"role": "user", "content": [part]}])["messages"][0]
    assert blocks["content"] == [{
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
    }]


def test_https_image_becomes_url_image_block():
    part = {"type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
    blocks = _request(messages=[{"role": "user", "content": [part]}])["messages"][0]
    assert blocks["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    ]


def test_image_url_of_another_scheme_is_refused():
    part = {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}}
    error = _refusal(messages=[{"role": "user", "content": [part]}])
    assert error.param == "messages[0].content[0].image_url.url"


def test_unsupported_content_part_is_refused_naming_it():
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    error = _refusal(messages=[*HELLO, {"role": "user", "content": [part]}])
    assert error.param == "messages[1].content[0].type"


def test_legacy_function_role_is_refused():
    message = {"role": "function", "name": "f", "content": "{}"}
    assert _refusal(messages=[*HELLO, message]).param == "messages[1].role"


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_assistant_tool_calls_become_tool_use_blocks_after_its_text():
    request = _request(messages=[
        *HELLO,
        {"role": "assistant", "content": "Let me look.", "tool_calls": [TOOL_CALL]},
    ])
    assert request["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather",
         "input": {"city": "Paris"}},
    ]}


def test_assistant_with_only_tool_calls_has_only_tool_use_blocks():
    request = _request(messages=[
        *HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    ])
    assert [b["type"] for b in request["messages"][1]["content"]] == ["tool_use"]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments):
    call = {**TOOL_CALL, "function": {"name": "f", "arguments": arguments}}
    error = _refusal(messages=[
        *HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, call]},
    ])
    assert error.param == "messages[1].tool_calls[1].function.arguments"


def test_tool_messages_become_one_user_turn_of_tool_results():
    second = {**TOOL_CALL, "id": "call_2"}
    request = _request(messages=[
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, second]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "Rain"}]},
        {"role": "user", "content": "Thanks"},
    ])
    assert request["messages"][2:] == [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "Rain"},
        {"type": "text", "text": "Thanks"},
    ]}]


def test_max_completion_tokens_wins_over_max_tokens():
    assert _request(max_completion_tokens=10, max_tokens=20)["max_tokens"] == 10


def test_max_tokens_is_passed():
    assert _request(max_tokens=20)["max_tokens"] == 20


def test_max_tokens_defaults_to_the_given_default():
    body = {"model": "public", "messages": HELLO}
    assert to_messages_request(body, "claude-up", default_max_tokens=99)["max_tokens"] == 99


def test_stop_string_becomes_a_stop_sequence_list():
    assert _request(stop="END")["stop_sequences"] == ["END"]


def test_stop_list_becomes_stop_sequences():
    assert _request(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize("given,sent", [(0, 0), (0.7, 0.7), (1, 1), (1.5, 1.0), (2, 1.0)])
def test_temperature_is_clamped_to_anthropics_range(given, sent):
    assert _request(temperature=given)["temperature"] == sent


def test_top_p_and_stream_are_passed():
    request = _request(top_p=0.9, stream=True, stream_options={"include_usage": True})
    assert (request["top_p"], request["stream"]) == (0.9, True)
    assert "stream_options" not in request


def test_user_becomes_metadata_user_id():
    assert _request(user="u-42")["metadata"] == {"user_id": "u-42"}


def test_fields_without_anthropic_equivalent_are_dropped():
    request = _request(
        presence_penalty=1, frequency_penalty=1, logit_bias={"1": 2}, seed=3,
        logprobs=True, top_logprobs=2, n=1,
        response_format={"type": "json_schema", "json_schema": {"name": "x"}},
    )
    assert set(request) == {"model", "max_tokens", "messages"}


def test_n_above_one_is_refused():
    assert _refusal(n=2).param == "n"


def test_function_tools_become_anthropic_tools():
    bare = {"type": "function", "function": {"name": "now"}}
    assert _request(tools=[WEATHER_TOOL, bare])["tools"] == [
        {"name": "get_weather", "description": "Current weather for a city.",
         "input_schema": WEATHER_TOOL["function"]["parameters"]},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]


def test_non_function_tools_are_refused():
    error = _refusal(tools=[WEATHER_TOOL, {"type": "custom", "custom": {"name": "x"}}])
    assert error.param == "tools[1].type"


@pytest.mark.parametrize("choice,sent", [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice_is_mapped(choice, sent):
    assert _request(tools=[WEATHER_TOOL], tool_choice=choice)["tool_choice"] == sent


def test_no_tool_choice_leaves_anthropics_default():
    assert "tool_choice" not in _request(tools=[WEATHER_TOOL])


def test_tool_choice_without_tools_is_not_sent():
    assert "tool_choice" not in _request(tool_choice="auto")


def test_parallel_tool_calls_false_disables_parallel_tool_use():
    request = _request(tools=[WEATHER_TOOL], tool_choice="required",
                       parallel_tool_calls=False)
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_parallel_tool_calls_false_alone_implies_auto():
    request = _request(tools=[WEATHER_TOOL], parallel_tool_calls=False)
    assert request["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_unknown_tool_choice_is_refused():
    assert _refusal(tools=[WEATHER_TOOL], tool_choice="sometimes").param == "tool_choice"


def test_clients_body_is_not_modified():
    messages = [
        {"role": "user", "content": "One"},
        {"role": "user", "content": [{"type": "text", "text": "Two"}]},
    ]
    body = {"model": "public", "messages": messages}
    snapshot = json.dumps(body)
    to_messages_request(body, "claude-up")
    assert json.dumps(body) == snapshot


# Non-streamed responses

MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-up",
    "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 5},
}


def test_response_is_a_chat_completion_naming_the_public_model():
    assert to_chat_completion(MESSAGE, "public", 1700000000) == {
        "id": "chatcmpl-msg_01",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "public",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there"},
            "logprobs": None,
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def test_response_tool_use_becomes_tool_calls_with_json_arguments():
    message = {**MESSAGE, "stop_reason": "tool_use", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
         "input": {"city": "Paris"}},
    ]}
    choice = to_chat_completion(message, "public", 0)["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }
    assert choice["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("stop_reason,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
    (None, "stop"),
])
def test_stop_reason_is_mapped_to_finish_reason(stop_reason, finish):
    message = {**MESSAGE, "stop_reason": stop_reason}
    assert to_chat_completion(message, "public", 0)["choices"][0]["finish_reason"] == finish


def test_response_usage_counts_cached_prompt_tokens():
    usage = {"input_tokens": 10, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 20, "output_tokens": 7}
    completion = to_chat_completion({**MESSAGE, "usage": usage}, "public", 0)
    # The codecs also report the cache reads, where OpenAI puts them.
    assert completion["usage"] == {
        "prompt_tokens": 130, "completion_tokens": 7, "total_tokens": 137,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


# Streams, as Anthropic sends them (event type, data)

TEXT_STREAM = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_02", "type": "message", "role": "assistant", "content": [],
        "model": "claude-up", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 5,
                  "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Hello"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": ", wörld! 😀"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta",
                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 6}}),
    ("message_stop", {"type": "message_stop"}),
]

TOOL_STREAM = [
    TEXT_STREAM[0],
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Checking."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
] + [
    event
    for index, (tool_id, city) in enumerate([("toolu_a", "Paris"), ("toolu_b", "Oslo")], 1)
    for event in [
        ("content_block_start", {"type": "content_block_start", "index": index,
                                 "content_block": {"type": "tool_use", "id": tool_id,
                                                   "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": index,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": index,
                                 "delta": {"type": "input_json_delta",
                                           "partial_json": '{"city": "'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": index,
                                 "delta": {"type": "input_json_delta",
                                           "partial_json": city + '"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]
] + [
    ("message_delta", {"type": "message_delta",
                       "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 40}}),
    ("message_stop", {"type": "message_stop"}),
]


def _translate(events, include_usage=False):
    translator = StreamTranslator("public", 1700000000, include_usage)
    chunks = [chunk for event in events for chunk in translator.feed(*event)]
    return translator, chunks


def _choices(chunks):
    return [chunk["choices"][0] for chunk in chunks if chunk["choices"]]


def test_stream_text_reassembles_exactly():
    _, chunks = _translate(TEXT_STREAM)
    content = "".join(c["delta"].get("content", "") for c in _choices(chunks))
    assert content == "Hello, wörld! 😀"


def test_stream_sends_role_first_then_one_chunk_per_text_delta_then_finish():
    _, chunks = _translate(TEXT_STREAM)
    assert [(c["delta"], c["finish_reason"]) for c in _choices(chunks)] == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
        ({"content": ", wörld! 😀"}, None),
        ({}, "stop"),
    ]


def test_stream_chunks_carry_openai_chunk_fields_without_usage_by_default():
    _, chunks = _translate(TEXT_STREAM)
    for chunk in chunks:
        assert set(chunk) == {"id", "object", "created", "model", "choices"}
        assert (chunk["id"], chunk["object"], chunk["created"], chunk["model"]) == (
            "chatcmpl-msg_02", "chat.completion.chunk", 1700000000, "public",
        )


def test_stream_with_include_usage_ends_with_a_choiceless_usage_chunk():
    _, chunks = _translate(TEXT_STREAM, include_usage=True)
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    # The codecs also report the cache reads, where OpenAI puts them.
    assert (chunks[-1]["choices"], chunks[-1]["usage"]) == ([], {
        "prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36,
        "prompt_tokens_details": {"cached_tokens": 5},
    })


def test_stream_usage_is_known_without_include_usage():
    translator, _ = _translate(TEXT_STREAM)
    assert translator.usage == {
        "prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36,
    }


def test_stream_usage_is_none_before_message_start():
    assert StreamTranslator("public", 0, False).usage is None


def test_stream_usage_counts_the_prompt_of_a_broken_stream():
    translator, _ = _translate(TEXT_STREAM[:4])
    assert translator.usage["prompt_tokens"] == 30


def test_stream_tool_use_starts_a_tool_call_numbered_among_tool_calls():
    _, chunks = _translate(TOOL_STREAM)
    starts = [c["delta"]["tool_calls"][0] for c in _choices(chunks)
              if "id" in c["delta"].get("tool_calls", [{}])[0]]
    assert starts == [
        {"index": i, "id": tool_id, "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}
        for i, tool_id in enumerate(["toolu_a", "toolu_b"])
    ]


def test_stream_tool_arguments_reassemble_exactly():
    _, chunks = _translate(TOOL_STREAM)
    arguments = ["", ""]
    for choice in _choices(chunks):
        for call in choice["delta"].get("tool_calls", []):
            arguments[call["index"]] += call["function"]["arguments"]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert arguments[0] == '{"city": "Paris"}'


def test_stream_tool_use_finishes_with_tool_calls():
    _, chunks = _translate(TOOL_STREAM, include_usage=True)
    assert _choices(chunks)[-1] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls",
    }
    assert chunks[-1]["usage"]["completion_tokens"] == 40


def test_stream_sends_thinking_as_reasoning_content():
    # The codecs stream thinking where DeepSeek and vLLM put reasoning,
    # rather than dropping it.
    translator, _ = _translate(TEXT_STREAM[:1])
    assert translator.feed("content_block_start", {"index": 0, "content_block": {
        "type": "thinking", "thinking": ""}}) == []
    [chunk] = translator.feed("content_block_delta", {"index": 0, "delta": {
        "type": "thinking_delta", "thinking": "Hmm"}})
    assert chunk["choices"][0]["delta"] == {"reasoning_content": "Hmm"}


def test_stream_ignores_unknown_events():
    translator, _ = _translate(TEXT_STREAM[:1])
    assert translator.feed("something_new", {}) == []


def test_stream_error_event_raises_mapped_api_error():
    translator, _ = _translate(TEXT_STREAM[:4])
    with pytest.raises(APIError) as caught:
        translator.feed("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}})
    assert (caught.value.status, caught.value.code) == (503, "upstream_overloaded")


# Errors


def _anthropic_error(kind, message):
    return json.dumps({"type": "error", "error": {"type": kind, "message": message},
                       "request_id": "req_1"}).encode()


@pytest.mark.parametrize("status,kind,mapped", [
    (400, "invalid_request_error", (400, "invalid_request_error", None)),
    (401, "authentication_error", (502, "upstream_error", "upstream_auth_failed")),
    (403, "permission_error", (502, "upstream_error", "upstream_auth_failed")),
    (404, "not_found_error", (404, "invalid_request_error", None)),
    (413, "request_too_large", (413, "invalid_request_error", "request_too_large")),
    (429, "rate_limit_error", (429, "rate_limit_error", "rate_limit_exceeded")),
    (500, "api_error", (502, "upstream_error", "upstream_error")),
    (503, "api_error", (502, "upstream_error", "upstream_error")),
    (529, "overloaded_error", (503, "upstream_error", "upstream_overloaded")),
])
def test_error_status_type_and_code_are_mapped(status, kind, mapped):
    error = error_from_anthropic(status, _anthropic_error(kind, "Something."))
    assert (error.status, error.type, error.code) == mapped


def test_invalid_request_message_is_kept():
    body = _anthropic_error("invalid_request_error", "max_tokens: too large")
    assert error_from_anthropic(400, body).message == "max_tokens: too large"


def test_auth_failure_blames_llmedges_credentials_not_the_clients_key():
    error = error_from_anthropic(401, _anthropic_error(
        "authentication_error", "invalid x-api-key"))
    assert "llmedge's credentials" in error.message
    assert "x-api-key" not in error.message


def test_not_found_naming_the_model_is_model_not_found():
    error = error_from_anthropic(404, _anthropic_error(
        "not_found_error", "model: claude-nope"))
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


def test_rate_limit_passes_retry_after_on():
    error = error_from_anthropic(
        429, _anthropic_error("rate_limit_error", "Slow down"), {"Retry-After": "17"}
    )
    assert error.headers == ((b"Retry-After", b"17"),)


def test_rate_limit_without_retry_after_has_no_headers():
    assert error_from_anthropic(429, b"").headers == ()


@pytest.mark.parametrize("status,mapped", [
    (400, 400), (401, 502), (404, 404), (413, 413), (429, 429), (500, 502),
    (502, 502), (529, 503),
])
def test_html_error_body_keeps_the_status_mapping_but_is_never_echoed(status, mapped):
    body = b"<html><body><h1>502 Bad Gateway</h1>cloudflare secret-ish</body></html>"
    error = error_from_anthropic(status, body)
    assert error.status == mapped
    assert "<" not in error.message and "cloudflare" not in error.message
