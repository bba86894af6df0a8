# -*- test-case-name: tests.unit.test_dialect_chat -*-
"""
The OpenAI Chat Completions codec: requests decoded into conversations and
encoded from them (L{llmedge.dialects.chat}), answers and streams decoded
into replies and events and encoded from them (L{llmedge.dialects.chat_reply}).
"""

from __future__ import annotations

import copy
import json

import pytest

from llmedge.checks import MAX_DEPTH
from llmedge.dialects.chat import decode_request, encode_request
from llmedge.dialects.chat_reply import (
    StreamDecoder,
    StreamEncoder,
    decode_reply,
    encode_reply,
)
from llmedge.dialects.conversation import (
    ASSISTANT,
    AUTO,
    NONE,
    REQUIRED,
    USER,
    Conversation,
    Image,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Turn,
)
from llmedge.dialects.reply import (
    CONTENT_FILTER,
    END,
    LENGTH,
    PAUSE,
    STOP_SEQUENCE,
    TOOL_CALLS,
    Accumulator,
    Finished,
    ReasoningDelta,
    Reply,
    Started,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallStarted,
    Usage,
    events_of,
)
from llmedge.errors import APIError, invalid_request
from llmedge.validation import validate_chat

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def _decode(**body):
    body.setdefault("messages", HELLO)
    return decode_request(validate_chat({"model": "public", **body}))


def _refusal(**body):
    with pytest.raises(APIError) as caught:
        _decode(**body)
    assert caught.value.status == 400
    return caught.value


def _unsupported(conversation):
    with pytest.raises(APIError) as caught:
        conversation.refuse_unsupported()
    return caught.value


# decode_request: messages


def test_decoded_request_names_the_public_model_and_holds_one_turn():
    conversation = _decode()
    assert (conversation.model, conversation.turns) == ("public", [Turn(USER, (Text("Hello"),))])


def test_system_and_developer_messages_become_system_prompts_in_order():
    conversation = _decode(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Be "},
                                          {"type": "text", "text": "kind."}]},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Answer in French."},
    ])
    assert conversation.system == ["Be brief.", "Be kind.", "Answer in French."]
    assert conversation.turns == [Turn(USER, (Text("Hi"),))]


def test_each_message_is_its_own_turn_even_with_the_same_role():
    conversation = _decode(messages=[
        {"role": "user", "content": "One"},
        {"role": "user", "content": "Two"},
        {"role": "assistant", "content": "Three"},
    ])
    assert [(t.role, t.text) for t in conversation.turns] == [
        (USER, "One"), (USER, "Two"), (ASSISTANT, "Three"),
    ]


def test_text_parts_stay_separate_parts_and_empty_text_is_left_out():
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": ""},
               {"type": "text", "text": "b"}]
    conversation = _decode(messages=[{"role": "user", "content": content}])
    assert conversation.turns[0].parts == (Text("a"), Text("b"))


def test_data_url_image_becomes_inline_image():
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}
    conversation = _decode(messages=[{"role": "user", "content": [part]}])
    assert conversation.turns[0].parts == (Image(media_type="image/png", data="iVBORw0K"),)


def test_https_image_stays_a_url():
    part = {"type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
    conversation = _decode(messages=[{"role": "user", "content": [part]}])
    assert conversation.turns[0].parts == (Image(url="https://example.com/cat.jpg"),)


def test_bare_image_url_string_is_taken_as_vllm_takes_it():
    part = {"type": "image_url", "image_url": "http://example.com/cat.jpg"}
    conversation = _decode(messages=[{"role": "user", "content": [part]}])
    assert conversation.turns[0].parts == (Image(url="http://example.com/cat.jpg"),)


@pytest.mark.parametrize("url", ["ftp://example.com/cat.jpg", "data:image/png,raw",
                                 "file:///etc/passwd"])
def test_image_url_of_another_kind_is_refused_naming_it(url):
    part = {"type": "image_url", "image_url": {"url": url}}
    error = _refusal(messages=[*HELLO, {"role": "user", "content": [part]}])
    assert error.param == "messages[1].content[0].image_url.url"


def test_refusal_parts_are_dropped():
    content = [{"type": "refusal", "refusal": "No."}, {"type": "text", "text": "Ok"}]
    conversation = _decode(messages=[*HELLO, {"role": "assistant", "content": content}])
    assert conversation.turns[1].parts == (Text("Ok"),)
    assert conversation.unsupported == []


@pytest.mark.parametrize("part", [
    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-1"}},
])
def test_audio_and_file_parts_are_noted_unsupported_not_refused(part):
    conversation = _decode(messages=[*HELLO, {"role": "user", "content": [part]}])
    error = _unsupported(conversation)
    assert (error.param, error.code) == ("messages[1].content[0].type", "unsupported_parameter")


def test_tool_message_becomes_a_user_turn_holding_its_result():
    conversation = _decode(messages=[
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "Rain"}]},
        {"role": "user", "content": "Thanks"},
    ])
    assert conversation.turns[2:] == [
        Turn(USER, (ToolResult("call_1", (Text("Sunny"),)),)),
        Turn(USER, (ToolResult("call_2", (Text("Rain"),)),)),
        Turn(USER, (Text("Thanks"),)),
    ]


def test_legacy_function_role_is_refused():
    message = {"role": "function", "name": "f", "content": "{}"}
    assert _refusal(messages=[*HELLO, message]).param == "messages[1].role"


def test_assistant_tool_calls_follow_its_text_with_arguments_kept_as_text():
    conversation = _decode(messages=[
        *HELLO, {"role": "assistant", "content": "Let me look.", "tool_calls": [TOOL_CALL]},
    ])
    assert conversation.turns[1] == Turn(ASSISTANT, (
        Text("Let me look."), ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ))


def test_assistant_with_only_tool_calls_has_only_tool_calls():
    conversation = _decode(messages=[
        *HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    ])
    assert [type(p) for p in conversation.turns[1].parts] == [ToolCall]


def test_tool_call_without_arguments_has_an_empty_object():
    call = {"id": "call_1", "type": "function", "function": {"name": "now"}}
    conversation = _decode(messages=[*HELLO, {"role": "assistant", "tool_calls": [call]}])
    assert conversation.turns[1].parts == (ToolCall("call_1", "now", "{}"),)


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"', "null"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments):
    call = {**TOOL_CALL, "function": {"name": "f", "arguments": arguments}}
    error = _refusal(messages=[
        *HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, call]},
    ])
    assert (error.param, error.code) == (
        "messages[1].tool_calls[1].function.arguments", "invalid_value")


def test_tool_call_arguments_nested_too_deep_are_refused():
    deep = '{"a": ' * MAX_DEPTH + "{}" + "}" * MAX_DEPTH
    call = {**TOOL_CALL, "function": {"name": "f", "arguments": deep}}
    error = _refusal(messages=[*HELLO, {"role": "assistant", "tool_calls": [call]}])
    assert error.param == "messages[1].tool_calls[0].function.arguments"


def test_tool_call_arguments_at_the_depth_limit_pass():
    deep = '{"a": ' * (MAX_DEPTH - 1) + "{}" + "}" * (MAX_DEPTH - 1)
    call = {**TOOL_CALL, "function": {"name": "f", "arguments": deep}}
    conversation = _decode(messages=[*HELLO, {"role": "assistant", "tool_calls": [call]}])
    assert conversation.turns[1].parts[0].arguments == deep


def test_tool_call_without_an_id_is_refused_as_missing():
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    error = _refusal(messages=[*HELLO, {"role": "assistant", "tool_calls": [call]}])
    assert (error.param, error.code) == (
        "messages[1].tool_calls[0].id", "missing_required_parameter")


def test_custom_tool_calls_are_noted_unsupported():
    call = {"id": "c", "type": "custom", "custom": {"name": "x", "input": "y"}}
    conversation = _decode(messages=[*HELLO, {"role": "assistant", "tool_calls": [call]}])
    assert _unsupported(conversation).param == "messages[1].tool_calls[0].type"


# decode_request: how to answer


def test_n_above_one_is_refused():
    error = _refusal(n=2)
    assert (error.param, error.code) == ("n", "invalid_value")
    assert error.message == "This model's provider can only generate one choice; n must be 1."


def test_n_of_one_is_accepted():
    assert _decode(n=1).turns


def test_max_completion_tokens_wins_over_max_tokens():
    assert _decode(max_completion_tokens=10, max_tokens=20).max_tokens == 10


def test_max_tokens_is_taken():
    assert _decode(max_tokens=20).max_tokens == 20


def test_no_max_tokens_leaves_the_providers_default():
    assert _decode().max_tokens is None


def test_stop_string_becomes_a_list():
    assert _decode(stop="END").stop == ["END"]


def test_stop_list_is_kept_without_empty_strings():
    assert _decode(stop=["a", "", "b"]).stop == ["a", "b"]


def test_temperature_and_top_p_are_taken_unclamped():
    conversation = _decode(temperature=1.5, top_p=0.9)
    assert (conversation.temperature, conversation.top_p) == (1.5, 0.9)


def test_function_tools_become_tools():
    bare = {"function": {"name": "now"}}  # no type, as vLLM allows
    assert _decode(tools=[WEATHER_TOOL, bare]).tools == [
        Tool("get_weather", "Current weather for a city.",
             WEATHER_TOOL["function"]["parameters"]),
        Tool("now"),
    ]


def test_non_function_tools_are_noted_unsupported():
    conversation = _decode(tools=[WEATHER_TOOL, {"type": "custom", "custom": {"name": "x"}}])
    assert [t.name for t in conversation.tools] == ["get_weather"]
    assert _unsupported(conversation).param == "tools[1].type"


@pytest.mark.parametrize("choice,decoded", [
    ("auto", ToolChoice(AUTO)),
    ("required", ToolChoice(REQUIRED)),
    ("none", ToolChoice(NONE)),
    ({"type": "function", "function": {"name": "get_weather"}},
     ToolChoice(REQUIRED, "get_weather")),
])
def test_tool_choice_is_decoded(choice, decoded):
    assert _decode(tools=[WEATHER_TOOL], tool_choice=choice).tool_choice == decoded


def test_parallel_tool_calls_go_with_the_choice():
    conversation = _decode(tools=[WEATHER_TOOL], tool_choice="required",
                           parallel_tool_calls=False)
    assert conversation.tool_choice == ToolChoice(REQUIRED, None, False)


def test_parallel_tool_calls_alone_imply_auto():
    conversation = _decode(tools=[WEATHER_TOOL], parallel_tool_calls=True)
    assert conversation.tool_choice == ToolChoice(AUTO, None, True)


def test_no_tool_choice_leaves_the_providers_default():
    assert _decode(tools=[WEATHER_TOOL]).tool_choice is None


def test_tool_choice_without_tools_is_dropped():
    assert _decode(tool_choice="required").tool_choice is None


def test_unknown_tool_choice_is_refused():
    error = _refusal(tools=[WEATHER_TOOL], tool_choice="sometimes")
    assert (error.param, error.code) == ("tool_choice", "invalid_value")


def test_json_object_response_format_is_decoded():
    assert _decode(response_format={"type": "json_object"}).response_format == (
        ResponseFormat("json_object"))


def test_json_schema_response_format_is_decoded():
    schema = {"type": "object", "properties": {}}
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert _decode(response_format=response_format).response_format == (
        ResponseFormat("json_schema", "x", schema, True))


def test_text_response_format_is_no_format():
    assert _decode(response_format={"type": "text"}).response_format is None


def test_user_becomes_metadata_user_id():
    assert _decode(user="u-42").metadata == {"user_id": "u-42"}


def test_stream_with_include_usage_is_decoded():
    conversation = _decode(stream=True, stream_options={"include_usage": True})
    assert (conversation.stream, conversation.include_usage) == (True, True)


def test_stream_without_stream_options_does_not_include_usage():
    conversation = _decode(stream=True)
    assert (conversation.stream, conversation.include_usage) == (True, False)


def test_fields_without_a_place_are_dropped_not_noted():
    conversation = _decode(presence_penalty=1, frequency_penalty=1, logit_bias={"1": 2},
                           seed=3, logprobs=True, top_logprobs=2, something_new={"a": 1})
    assert conversation.unsupported == []
    conversation.refuse_unsupported()


def test_clients_body_is_not_modified():
    body = {"model": "public", "stop": "x", "messages": [
        *HELLO, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ]}
    snapshot = copy.deepcopy(body)
    decode_request(body)
    assert body == snapshot


# encode_request


def _conversation(*turns, **fields):
    return Conversation("public", list(turns) or [Turn(USER, (Text("Hi"),))], **fields)


def test_encoded_request_names_the_upstream_model_with_string_content():
    assert encode_request(_conversation(), "up-model") == {
        "model": "up-model", "messages": [{"role": "user", "content": "Hi"}],
    }


def test_each_system_prompt_is_a_system_message_first():
    request = encode_request(_conversation(system=["Be brief.", "Be kind."]), "m")
    assert request["messages"][:2] == [
        {"role": "system", "content": "Be brief."}, {"role": "system", "content": "Be kind."},
    ]


def test_images_become_image_url_parts_alongside_text():
    turn = Turn(USER, (Text("What is it?"), Image(url="https://x/cat.jpg"),
                       Image(media_type="image/png", data="iVBO")))
    assert encode_request(_conversation(turn), "m")["messages"][0]["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
    ]


def test_assistant_tool_calls_become_tool_calls_with_null_content():
    turn = Turn(ASSISTANT, (Reasoning("hmm", "sig"), ToolCall("t1", "f", '{"a":1}')))
    assert encode_request(_conversation(turn), "m")["messages"] == [{
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
        ],
    }]


def test_assistant_text_is_its_content_and_reasoning_is_dropped():
    turn = Turn(ASSISTANT, (Reasoning("hmm"), Text("Hello"), Text(" there")))
    assert encode_request(_conversation(turn), "m")["messages"] == [
        {"role": "assistant", "content": "Hello there"},
    ]


def test_tool_results_become_tool_messages_before_the_rest_of_the_turn():
    turn = Turn(USER, (Text("Thanks"), ToolResult("t1", (Text("Sun"), Text("ny"))),
                       ToolResult("t2", ())))
    assert encode_request(_conversation(turn), "m")["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "t2", "content": ""},
        {"role": "user", "content": "Thanks"},
    ]


def test_images_of_a_tool_result_follow_in_a_user_message():
    image = Image(url="https://x/chart.png")
    turn = Turn(USER, (ToolResult("t1", (Text("chart:"), image)),))
    assert encode_request(_conversation(turn), "m")["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "chart:"},
        {"role": "user", "content": [{"type": "image_url",
                                      "image_url": {"url": "https://x/chart.png"}}]},
    ]


def test_sampling_fields_are_sent_with_max_tokens():
    request = encode_request(_conversation(max_tokens=50, temperature=0.2, top_p=0.5, top_k=4,
                                           stop=["END"]), "m")
    assert {k: v for k, v in request.items() if k not in ("model", "messages")} == {
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.5, "stop": ["END"],
    }


def test_tools_and_the_choice_among_them_are_sent():
    conversation = _conversation(tools=[Tool("f", "Does f.", {"type": "object"}), Tool("g")],
                                 tool_choice=ToolChoice(REQUIRED, "f", False))
    request = encode_request(conversation, "m")
    assert request["tools"] == [
        {"type": "function", "function": {"name": "f", "description": "Does f.",
                                          "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "g"}},
    ]
    assert (request["tool_choice"], request["parallel_tool_calls"]) == (
        {"type": "function", "function": {"name": "f"}}, False)


@pytest.mark.parametrize("mode", [AUTO, REQUIRED, NONE])
def test_tool_choice_modes_are_sent_as_strings(mode):
    conversation = _conversation(tools=[Tool("f")], tool_choice=ToolChoice(mode))
    request = encode_request(conversation, "m")
    assert (request["tool_choice"], "parallel_tool_calls" in request) == (mode, False)


def test_tool_choice_without_tools_is_not_sent():
    request = encode_request(_conversation(tool_choice=ToolChoice(REQUIRED)), "m")
    assert "tool_choice" not in request and "tools" not in request


def test_json_schema_without_a_name_gets_one():
    conversation = _conversation(response_format=ResponseFormat("json_schema", schema={}))
    assert encode_request(conversation, "m")["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": {}},
    }


def test_json_object_format_is_sent():
    conversation = _conversation(response_format=ResponseFormat("json_object"))
    assert encode_request(conversation, "m")["response_format"] == {"type": "json_object"}


def test_metadata_user_id_becomes_user():
    assert encode_request(_conversation(metadata={"user_id": "u-1"}), "m")["user"] == "u-1"


def test_a_stream_always_asks_for_the_usage():
    request = encode_request(_conversation(stream=True), "m")
    assert (request["stream"], request["stream_options"]) == (True, {"include_usage": True})


def test_a_decoded_request_encodes_back_to_what_it_asked():
    body = {"model": "public", "max_tokens": 9, "stop": ["x"], "user": "u",
            "tools": [WEATHER_TOOL], "tool_choice": "auto", "messages": [
                {"role": "system", "content": "Be brief."}, *HELLO,
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}]}
    assert encode_request(decode_request(body), "public") == body


# decode_reply

COMPLETION = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "up",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}


def _completion(message=None, finish_reason="stop", **fields):
    choice = {"index": 0, "message": {"role": "assistant", **(message or {})},
              "finish_reason": finish_reason}
    return {**COMPLETION, "choices": [choice], **fields}


def test_decoded_reply_holds_the_text_id_created_and_usage():
    assert decode_reply(COMPLETION) == Reply(
        "chatcmpl-abc", [Text("Hello")], END, Usage(12, 5), None, 1700000000)


@pytest.mark.parametrize("name", ["reasoning_content", "reasoning"])
def test_reasoning_comes_first_by_either_name(name):
    reply = decode_reply(_completion({"content": "42", name: "Let me think."}))
    assert reply.parts == [Reasoning("Let me think."), Text("42")]


def test_tool_calls_become_tool_call_parts():
    message = {"content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    reply = decode_reply(_completion(message, "tool_calls"))
    assert (reply.parts, reply.stop) == (
        [ToolCall("call_1", "get_weather", '{"city":"Paris"}')], TOOL_CALLS)


def test_tool_calls_with_finish_reason_stop_stopped_for_the_tools():
    message = {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}
    assert decode_reply(_completion(message, "stop")).stop == TOOL_CALLS


@pytest.mark.parametrize("finish_reason,stop", [
    ("stop", END), ("length", LENGTH), ("tool_calls", TOOL_CALLS),
    ("function_call", TOOL_CALLS), ("content_filter", CONTENT_FILTER),
    ("something_new", END), (None, END),
])
def test_finish_reason_is_decoded(finish_reason, stop):
    assert decode_reply(_completion({"content": "x"}, finish_reason)).stop == stop


def test_cached_prompt_tokens_are_decoded():
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
             "prompt_tokens_details": {"cached_tokens": 80}}
    assert decode_reply({**COMPLETION, "usage": usage}).usage == Usage(100, 5, 80)


def test_refusal_is_the_text_of_a_refusing_model():
    reply = decode_reply(_completion({"content": None, "refusal": "I can't help."}))
    assert reply.text == "I can't help."


@pytest.mark.parametrize("document", [
    [], "chat.completion", {**COMPLETION, "object": "text_completion"},
    {**COMPLETION, "choices": []}, {**COMPLETION, "choices": [{"text": "x"}]},
])
def test_what_is_not_a_chat_completion_is_a_value_error(document):
    with pytest.raises(ValueError):
        decode_reply(document)


# encode_reply

PUBLIC = Conversation("public", [Turn(USER, (Text("Hi"),))])


def test_encoded_reply_is_a_chat_completion_naming_the_public_model():
    reply = Reply("msg_01", [Text("Hello"), Text(" there")], END, Usage(12, 5))
    assert encode_reply(reply, PUBLIC, 1700000000) == {
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


def test_encoded_reply_does_not_prefix_its_id_twice():
    assert encode_reply(Reply("chatcmpl-1", []), PUBLIC, 0)["id"] == "chatcmpl-1"


def test_encoded_tool_calls_keep_their_arguments_text_and_null_content():
    reply = Reply("m", [ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')], TOOL_CALLS)
    choice = encode_reply(reply, PUBLIC, 0)["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert choice["finish_reason"] == "tool_calls"


def test_encoded_reasoning_is_reasoning_content():
    reply = Reply("m", [Reasoning("Hmm", "sig"), Text("42")])
    message = encode_reply(reply, PUBLIC, 0)["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Hmm", "42")


@pytest.mark.parametrize("stop,finish_reason", [
    (END, "stop"), (STOP_SEQUENCE, "stop"), (LENGTH, "length"), (TOOL_CALLS, "tool_calls"),
    (CONTENT_FILTER, "content_filter"), (PAUSE, "stop"),
])
def test_stop_is_encoded_as_finish_reason(stop, finish_reason):
    choice = encode_reply(Reply("m", [Text("x")], stop), PUBLIC, 0)["choices"][0]
    assert choice["finish_reason"] == finish_reason


def test_cached_tokens_are_encoded_as_prompt_tokens_details():
    usage = encode_reply(Reply("m", [], usage=Usage(100, 5, 80)), PUBLIC, 0)["usage"]
    assert usage == {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                     "prompt_tokens_details": {"cached_tokens": 80}}


def test_encoded_then_decoded_reply_keeps_text_tool_calls_stop_and_usage():
    reply = Reply("chatcmpl-9", [Text("Checking."), ToolCall("c1", "f", '{"a": 1}'),
                                 ToolCall("c2", "g", "{}")], TOOL_CALLS, Usage(30, 7, 4))
    decoded = decode_reply(encode_reply(reply, PUBLIC, 5))
    assert (decoded.parts, decoded.stop, decoded.usage, decoded.id) == (
        reply.parts, reply.stop, reply.usage, reply.id)


# StreamEncoder


def _data(stream: bytes) -> list:
    """
    The data of each server-sent event, JSON decoded but for [DONE].
    """
    assert stream.endswith(b"\n\n")
    events = stream[:-2].split(b"\n\n")
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events)
    return [e[6:].decode() if e == b"data: [DONE]" else json.loads(e[6:]) for e in events]


def _encode(events, include_usage=False, ended=True):
    conversation = Conversation("public", [], include_usage=include_usage)
    encoder = StreamEncoder(conversation, 1700000000)
    sent = b"".join(encoder.encode(e) for e in events)
    return _data(sent + (encoder.end() if ended else b""))


def _choices(chunks):
    return [c["choices"][0] for c in chunks if isinstance(c, dict) and c["choices"]]


TEXT_EVENTS = [Started("msg_02", Usage(30)), TextDelta("Hello"), TextDelta(", wörld! 😀"),
               Finished(END, Usage(30, 6))]
TOOL_EVENTS = [
    Started("msg_03"), TextDelta("Checking."),
    ToolCallStarted(0, "toolu_a", "get_weather"), ToolArgumentsDelta(0, '{"city": "'),
    ToolArgumentsDelta(0, 'Paris"}'),
    ToolCallStarted(1, "toolu_b", "get_weather"), ToolArgumentsDelta(1, '{"city": "Oslo"}'),
    Finished(TOOL_CALLS, Usage(30, 40)),
]


def test_stream_sends_role_first_then_each_text_delta_then_finish_then_done():
    chunks = _encode(TEXT_EVENTS)
    assert [(c["delta"], c["finish_reason"]) for c in _choices(chunks)] == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hello"}, None),
        ({"content": ", wörld! 😀"}, None),
        ({}, "stop"),
    ]
    assert chunks[-1] == "[DONE]"


def test_stream_chunks_carry_openai_chunk_fields_without_usage_by_default():
    for chunk in _encode(TEXT_EVENTS)[:-1]:
        assert (chunk["id"], chunk["object"], chunk["created"], chunk["model"]) == (
            "chatcmpl-msg_02", "chat.completion.chunk", 1700000000, "public")
        assert set(chunk) == {"id", "object", "created", "model", "choices"}
        assert chunk["choices"][0]["logprobs"] is None


def test_stream_chunks_are_compact_utf8_json():
    conversation = Conversation("public", [])
    sent = StreamEncoder(conversation, 0).encode(TextDelta("wörld"))
    assert b'"delta":{"content":"w\xc3\xb6rld"}' in sent and b", " not in sent


def test_stream_with_include_usage_ends_with_a_choiceless_usage_chunk():
    chunks = _encode(TEXT_EVENTS, include_usage=True)[:-1]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert (chunks[-1]["choices"], chunks[-1]["usage"]) == (
        [], {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36})


def test_stream_usage_falls_back_to_the_usage_known_at_the_start():
    events = [Started("m", Usage(30)), Finished(END)]
    assert _encode(events, include_usage=True)[-2]["usage"]["prompt_tokens"] == 30


def test_stream_without_any_usage_sends_no_usage_chunk():
    chunks = _encode([Started("m"), Finished(END)], include_usage=True)
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_stream_tool_calls_start_numbered_among_tool_calls():
    starts = [c["delta"]["tool_calls"][0] for c in _choices(_encode(TOOL_EVENTS))
              if "id" in c["delta"].get("tool_calls", [{}])[0]]
    assert starts == [
        {"index": i, "id": tool_id, "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}
        for i, tool_id in enumerate(["toolu_a", "toolu_b"])
    ]


def test_stream_tool_call_numbers_do_not_depend_on_the_events_numbers():
    events = [Started("m"), ToolCallStarted(5, "a", "f"), ToolArgumentsDelta(5, "{}")]
    calls = [c["delta"]["tool_calls"][0] for c in _choices(_encode(events))[1:3]]
    assert [call["index"] for call in calls] == [0, 0]


def test_stream_tool_arguments_reassemble_exactly():
    arguments = ["", ""]
    for choice in _choices(_encode(TOOL_EVENTS)):
        for call in choice["delta"].get("tool_calls", []):
            arguments[call["index"]] += call["function"]["arguments"]
    assert arguments == ['{"city": "Paris"}', '{"city": "Oslo"}']


def test_stream_arguments_of_a_call_never_started_are_dropped():
    chunks = _encode([Started("m"), ToolArgumentsDelta(3, "{}"), Finished(END)])
    assert [c["delta"] for c in _choices(chunks)] == [{"role": "assistant", "content": ""}, {}]


def test_stream_text_after_a_tool_call_is_content():
    events = [Started("m"), ToolCallStarted(0, "a", "f"), TextDelta("done")]
    assert _choices(_encode(events))[-2]["delta"] == {"content": "done"}


def test_stream_reasoning_is_reasoning_content():
    events = [Started("m"), ReasoningDelta("Hmm"), ReasoningDelta("", "sig"), TextDelta("x")]
    deltas = [c["delta"] for c in _choices(_encode(events))]
    assert deltas[1:3] == [{"reasoning_content": "Hmm"}, {"content": "x"}]


def test_stream_with_no_deltas_is_a_role_and_a_finish():
    chunks = _encode([Started("m"), Finished(LENGTH)])
    assert [(c["delta"], c["finish_reason"]) for c in _choices(chunks)] == [
        ({"role": "assistant", "content": ""}, None), ({}, "length")]


def test_stream_opens_with_the_role_even_without_started():
    assert _choices(_encode([TextDelta("Hi")]))[0]["delta"] == {
        "role": "assistant", "content": ""}


def test_stream_ended_without_finished_gets_a_finish_before_done():
    chunks = _encode([Started("m"), TextDelta("Hi")])
    assert (_choices(chunks)[-1]["finish_reason"], chunks[-1]) == ("stop", "[DONE]")


def test_stream_sends_nothing_after_its_finish():
    encoder = StreamEncoder(PUBLIC, 0)
    encoder.encode(Finished(END))
    assert (encoder.encode(TextDelta("late")), encoder.end()) == (b"", b"data: [DONE]\n\n")


def test_stream_failure_is_the_error_document_as_data():
    error = invalid_request("Broken.", "x")
    assert StreamEncoder(PUBLIC, 0).fail(error) == b"data: " + error.body() + b"\n\n"


# StreamDecoder

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "up"}


def _chunk(delta=None, finish_reason=None, **fields):
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish_reason}
    return {**HEAD, "choices": [choice], **fields}


def _decoded(*chunks):
    decoder = StreamDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return decoder, events + decoder.finish()


def test_first_chunk_starts_the_stream_with_its_id_and_created():
    _, events = _decoded(_chunk({"role": "assistant", "content": ""}))
    assert events == [Started("chatcmpl-1", None, 7), Finished(END)]


def test_stream_without_a_role_chunk_still_starts():
    _, events = _decoded(_chunk({"content": "Hi"}))
    assert events[:2] == [Started("chatcmpl-1", None, 7), TextDelta("Hi")]


def test_empty_deltas_and_null_content_give_nothing():
    _, events = _decoded(_chunk({}), _chunk({"content": None, "role": None}),
                         _chunk({"content": ""}), {**HEAD, "choices": [{"index": 0}]})
    assert events == [Started("chatcmpl-1", None, 7), Finished(END)]


@pytest.mark.parametrize("name", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_are_read_by_either_name(name):
    _, events = _decoded(_chunk({name: "Hmm", "content": None}))
    assert events[1] == ReasoningDelta("Hmm")


def test_tool_call_deltas_start_a_call_then_add_arguments():
    _, events = _decoded(
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk({}, "tool_calls"),
    )
    assert events[1:] == [ToolCallStarted(0, "c1", "f"), ToolArgumentsDelta(0, '{"a":'),
                          ToolArgumentsDelta(0, "1}"), Finished(TOOL_CALLS)]


def test_one_delta_may_carry_a_whole_tool_call():
    _, events = _decoded(_chunk({"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}},
        {"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]}))
    assert events[1:5] == [ToolCallStarted(0, "c1", "f"), ToolArgumentsDelta(0, "{}"),
                           ToolCallStarted(1, "c2", "g"), ToolArgumentsDelta(1, "{}")]


def test_tool_calls_without_index_are_told_apart_by_id():
    _, events = _decoded(
        _chunk({"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
        _chunk({"tool_calls": [{"id": "c2", "function": {"name": "g"}}]}),
        _chunk({"tool_calls": [{"function": {"arguments": "{}"}}]}),
    )
    assert [e for e in events if isinstance(e, ToolCallStarted | ToolArgumentsDelta)] == [
        ToolCallStarted(0, "c1", "f"), ToolArgumentsDelta(0, "{}"),
        ToolCallStarted(1, "c2", "g"), ToolArgumentsDelta(1, "{}")]


def test_a_reused_index_with_a_new_id_is_a_new_call():
    _, events = _decoded(
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}),
        _chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "g"}}]}),
    )
    assert events[1:3] == [ToolCallStarted(0, "c1", "f"), ToolCallStarted(1, "c2", "g")]


def test_tool_calls_finished_with_stop_stopped_for_the_tools():
    _, events = _decoded(
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f"}}]}),
        _chunk({}, "stop"))
    assert events[-1] == Finished(TOOL_CALLS)


def test_finish_reason_is_remembered_for_the_end():
    _, events = _decoded(_chunk({"content": "x"}, "length"), _chunk({}))
    assert events[-1] == Finished(LENGTH)


def test_other_choices_are_ignored():
    chunk = {**HEAD, "choices": [{"index": 1, "delta": {"content": "other"}}]}
    _, events = _decoded(chunk)
    assert events == [Started("chatcmpl-1", None, 7), Finished(END)]


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_usage_of_openais_choiceless_last_chunk_is_read():
    decoder, events = _decoded(_chunk({"content": "x"}, usage=None),
                               {**HEAD, "choices": [], "usage": USAGE})
    assert (decoder.usage, events[-1]) == (USAGE, Finished(END, Usage(5, 2)))


def test_usage_of_litellms_empty_choice_is_read():
    decoder, _ = _decoded(_chunk({"content": "x"}),
                          {**HEAD, "choices": [{"index": 0, "delta": {}}], "usage": USAGE})
    assert decoder.usage == USAGE


def test_usage_on_the_last_content_chunk_is_read_and_the_last_usage_wins():
    first = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    decoder, events = _decoded(_chunk({"content": "a"}, usage=first),
                               _chunk({"content": "b"}, "stop", usage=USAGE))
    assert (decoder.usage, events[-1].usage) == (USAGE, Usage(5, 2))


def test_usage_is_none_before_any():
    assert StreamDecoder().usage is None


def test_cached_tokens_of_a_stream_are_read():
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 3}}
    _, events = _decoded({**HEAD, "choices": [], "usage": usage})
    assert events[-1].usage == Usage(5, 2, 3)


def test_finish_of_an_empty_stream_starts_and_finishes_it():
    assert StreamDecoder().finish() == [Started(""), Finished(END)]


def test_finished_comes_once():
    decoder, _ = _decoded(_chunk({"content": "x"}))
    assert (decoder.finish(), decoder.feed(_chunk({"content": "late"}))) == ([], [])


@pytest.mark.parametrize("chunk", [
    [], {"choices": "x"}, {"choices": [1, None]}, {"choices": [{"delta": "x"}]},
    {"choices": [{"delta": {"content": 5, "reasoning": [], "tool_calls": "x"}}]},
    {"id": 3, "created": "now", "usage": "lots"},
])
def test_malformed_chunks_give_no_events_and_no_errors(chunk):
    decoder = StreamDecoder()
    assert decoder.feed(chunk) + decoder.finish() == [Started("", None, 0), Finished(END)]


def test_a_tool_call_delta_with_no_id_or_index_gets_an_id():
    _, events = _decoded(_chunk({"tool_calls": [{"id": {}, "function": {"name": "f"}}]}))
    assert events[1] == ToolCallStarted(0, "call_0", "f")


def test_stream_decoder_reads_back_what_the_stream_encoder_wrote():
    reply = Reply("chatcmpl-9", [Reasoning("Hmm"), Text("Checking."),
                                 ToolCall("c1", "f", '{"a": 1}'), ToolCall("c2", "g", "")],
                  TOOL_CALLS, Usage(30, 7, 4))
    encoder = StreamEncoder(Conversation("public", [], include_usage=True), 0)
    stream = b"".join(encoder.encode(e) for e in events_of(reply)) + encoder.end()
    decoder, accumulator = StreamDecoder(), Accumulator()
    for data in _data(stream)[:-1]:
        for event in decoder.feed(data):
            accumulator.feed(event)
    for event in decoder.finish():
        accumulator.feed(event)
    decoded = accumulator.reply
    assert (decoded.id, decoded.parts, decoded.stop, decoded.usage) == (
        reply.id, reply.parts, reply.stop, reply.usage)


def test_a_strict_function_tool_keeps_strict_both_ways():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object"}, "strict": True}}]}
    conversation = decode_request(body)
    assert conversation.tools[0].strict is True
    assert encode_request(conversation, "up")["tools"][0]["function"]["strict"] is True
