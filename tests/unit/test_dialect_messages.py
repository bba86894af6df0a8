# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
The Anthropic Messages codec: requests decoded into conversations and
encoded back (L{llmedge.dialects.messages}), answers and streams both ways
(L{llmedge.dialects.messages_reply}), and errors in Anthropic's shape
(L{llmedge.dialects.messages_errors}). Where the anthropic SDK is
installed, what llmedge writes is also checked against its wire types.
"""

import json

import pytest

from llmedge.dialects.conversation import (
    ASSISTANT, AUTO, NONE, REQUIRED, USER, Conversation, Image, Reasoning, ResponseFormat,
    Text, Tool, ToolCall, ToolChoice, ToolResult, Turn,
)
from llmedge.dialects.messages import (
    IMAGE_TOKENS, TOKENS_PER_TURN, TOOL_PROMPT_TOKENS, decode_request, encode_request,
    estimate_input_tokens,
)
from llmedge.dialects.messages_errors import (
    error_body, error_from_anthropic, error_from_event,
)
from llmedge.dialects.messages_reply import (
    StreamDecoder, StreamEncoder, decode_reply, encode_reply,
)
from llmedge.dialects.reply import (
    CONTENT_FILTER, END, LENGTH, PAUSE, STOP_SEQUENCE, TOOL_CALLS, Accumulator, Finished,
    ReasoningDelta, Reply, Started, TextDelta, ToolArgumentsDelta, ToolCallStarted, Usage,
    events_of,
)
from llmedge.errors import APIError
from llmedge.tokens import count_tokens

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
            "input": {"city": "Paris"}}


def _body(**fields):
    return {"model": "public", "max_tokens": 100, "messages": HELLO, **fields}


def _decode(**fields):
    return decode_request(_body(**fields))


def _refusal(body):
    with pytest.raises(APIError) as caught:
        decode_request(body)
    assert caught.value.status == 400
    return caught.value


def _conversation(*turns, **fields):
    return Conversation("public", list(turns) or [Turn(USER, (Text("Hello"),))], **fields)


def _encode(*turns, **fields):
    return encode_request(_conversation(*turns, **fields), "claude-up")


# Decoding requests


def test_minimal_body_is_one_user_turn_of_text():
    conversation = decode_request(_body())
    assert (conversation.model, conversation.max_tokens) == ("public", 100)
    assert conversation.turns == [Turn(USER, (Text("Hello"),))]


def test_system_string_becomes_the_system_prompt():
    assert _decode(system="Be brief.").system == ["Be brief."]


def test_system_text_blocks_each_become_a_system_prompt():
    blocks = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]
    assert _decode(system=blocks).system == ["Be brief.", "Be kind."]


def test_system_role_message_adds_to_the_system_prompt():
    messages = [{"role": "system", "content": "Answer in French."}, *HELLO]
    conversation = _decode(system="Be brief.", messages=messages)
    assert conversation.system == ["Be brief.", "Answer in French."]
    assert len(conversation.turns) == 1


def test_missing_max_tokens_is_refused_naming_it():
    body = _body()
    del body["max_tokens"]
    error = _refusal(body)
    assert (error.param, error.code) == ("max_tokens", "missing_required_parameter")


def test_max_tokens_of_another_type_is_refused():
    assert _refusal(_body(max_tokens="100")).code == "invalid_type"


def test_max_tokens_zero_is_taken_as_anthropic_takes_it():
    assert _decode(max_tokens=0).max_tokens == 0


def test_model_that_is_not_a_string_is_refused():
    assert _refusal(_body(model=7)).param == "model"


def test_empty_messages_are_refused():
    assert _refusal(_body(messages=[])).param == "messages"


def test_unknown_role_is_refused_naming_it():
    assert _refusal(_body(messages=[*HELLO, {"role": "tool", "content": "x"}])).param \
        == "messages[1].role"


def test_missing_content_is_refused_naming_it():
    assert _refusal(_body(messages=[{"role": "user"}])).param == "messages[0].content"


def test_content_of_another_type_is_refused():
    assert _refusal(_body(messages=[{"role": "user", "content": 3}])).param \
        == "messages[0].content"


def test_block_type_that_is_not_a_string_is_refused():
    messages = [{"role": "user", "content": [{"type": 1}]}]
    assert _refusal(_body(messages=messages)).param == "messages[0].content[0].type"


def test_text_block_without_text_is_refused():
    messages = [{"role": "user", "content": [{"type": "text"}]}]
    assert _refusal(_body(messages=messages)).param == "messages[0].content[0].text"


@pytest.mark.parametrize("kind", ["document", "search_result", "server_tool_use",
                                  "web_search_tool_result", "hologram"])
def test_block_of_a_type_llmedge_cannot_carry_is_noted_and_left_out(kind):
    content = [{"type": "text", "text": "Look:"}, {"type": kind, "source": {}}]
    conversation = _decode(messages=[{"role": "user", "content": content}])
    assert conversation.turns == [Turn(USER, (Text("Look:"),))]
    assert [param for param, _ in conversation.unsupported] == ["messages[0].content[1].type"]


def test_base64_image_becomes_inline_image():
    source = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}
    content = [{"type": "image", "source": source}]
    turn = _decode(messages=[{"role": "user", "content": content}]).turns[0]
    assert turn.parts == (Image(media_type="image/png", data="iVBOR"),)


def test_url_image_becomes_image_url():
    content = [{"type": "image", "source": {"type": "url", "url": "https://x/c.png"}}]
    turn = _decode(messages=[{"role": "user", "content": content}]).turns[0]
    assert turn.parts == (Image(url="https://x/c.png"),)


def test_file_image_is_noted_as_unsupported():
    content = [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]
    conversation = _decode(messages=[{"role": "user", "content": content}])
    assert conversation.unsupported[0][0] == "messages[0].content[0].source.type"


def test_base64_image_without_data_is_refused_naming_it():
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]
    error = _refusal(_body(messages=[{"role": "user", "content": content}]))
    assert error.param == "messages[0].content[0].source.data"


def test_tool_use_becomes_tool_call_with_compact_json_arguments():
    messages = [*HELLO, {"role": "assistant", "content": [TOOL_USE]}]
    turn = _decode(messages=messages).turns[1]
    assert turn == Turn(ASSISTANT, (ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),))


def test_tool_use_input_that_is_not_an_object_is_refused():
    messages = [*HELLO, {"role": "assistant", "content": [{**TOOL_USE, "input": "x"}]}]
    assert _refusal(_body(messages=messages)).param == "messages[1].content[0].input"


def test_tool_result_string_becomes_tool_result_part():
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}
    turn = _decode(messages=[{"role": "user", "content": [result]}]).turns[0]
    assert turn.parts == (ToolResult("toolu_1", (Text("Sunny"),)),)


def test_tool_result_blocks_and_error_flag_are_kept():
    image = {"type": "image", "source": {"type": "url", "url": "https://x/c.png"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
              "content": [{"type": "text", "text": "Failed"}, image]}
    turn = _decode(messages=[{"role": "user", "content": [result]}]).turns[0]
    assert turn.parts == (
        ToolResult("toolu_1", (Text("Failed"), Image(url="https://x/c.png")), True),
    )


def test_tool_result_in_an_assistant_message_is_refused():
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}
    messages = [*HELLO, {"role": "assistant", "content": [result]}]
    assert _refusal(_body(messages=messages)).param == "messages[1].content[0].type"


def test_tool_use_in_a_user_message_is_refused():
    messages = [{"role": "user", "content": [TOOL_USE]}]
    assert _refusal(_body(messages=messages)).param == "messages[0].content[0].type"


def test_thinking_becomes_signed_reasoning_and_redacted_thinking_is_left_out():
    content = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
               {"type": "redacted_thinking", "data": "opaque"},
               {"type": "text", "text": "Done."}]
    turn = _decode(messages=[*HELLO, {"role": "assistant", "content": content}]).turns[1]
    assert turn.parts == (Reasoning("Hmm.", "sig"), Text("Done."))


def test_custom_tools_become_tools():
    tools = [WEATHER, {"type": "custom", "name": "now", "input_schema": {"type": "object"}}]
    assert _decode(tools=tools).tools == [
        Tool("get_weather", WEATHER["description"], WEATHER["input_schema"]),
        Tool("now", None, {"type": "object"}),
    ]


def test_server_tool_is_noted_as_unsupported():
    server = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    conversation = _decode(tools=[WEATHER, server])
    assert [t.name for t in conversation.tools] == ["get_weather"]
    assert conversation.unsupported[0][0] == "tools[1].type"


def test_tool_without_input_schema_is_refused_naming_it():
    assert _refusal(_body(tools=[{"name": "now"}])).param == "tools[0].input_schema"


@pytest.mark.parametrize("choice,decoded", [
    ({"type": "auto"}, ToolChoice(AUTO)),
    ({"type": "any"}, ToolChoice(REQUIRED)),
    ({"type": "tool", "name": "get_weather"}, ToolChoice(REQUIRED, "get_weather")),
    ({"type": "none"}, ToolChoice(NONE)),
    ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice(REQUIRED, None, False)),
])
def test_tool_choice_is_decoded(choice, decoded):
    assert _decode(tools=[WEATHER], tool_choice=choice).tool_choice == decoded


def test_tool_choice_of_a_tool_without_name_is_refused():
    assert _refusal(_body(tool_choice={"type": "tool"})).param == "tool_choice.name"


def test_stop_sequence_that_is_not_a_string_is_refused_naming_it():
    assert _refusal(_body(stop_sequences=["END", 3])).param == "stop_sequences[1]"


def test_temperature_above_anthropics_range_is_refused():
    assert _refusal(_body(temperature=1.5)).param == "temperature"


def test_sampling_and_stop_fields_are_kept():
    conversation = _decode(temperature=0.5, top_p=0.9, top_k=40, stop_sequences=["END"])
    assert (conversation.temperature, conversation.top_p, conversation.top_k,
            conversation.stop) == (0.5, 0.9, 40, ["END"])


def test_metadata_user_id_lands_in_metadata():
    assert _decode(metadata={"user_id": "u-42"}).metadata == {"user_id": "u-42"}


def test_metadata_user_id_of_another_type_is_refused():
    assert _refusal(_body(metadata={"user_id": 42})).param == "metadata.user_id"


def test_stream_true_asks_for_a_stream():
    assert _decode(stream=True).stream is True


def test_stream_of_another_type_is_refused():
    assert _refusal(_body(stream="yes")).param == "stream"


def test_thinking_config_and_unknown_fields_are_dropped():
    conversation = _decode(thinking={"type": "enabled", "budget_tokens": 2048},
                           service_tier="auto", something_new={"x": 1})
    assert conversation.unsupported == []


# Encoding requests


def test_request_names_the_upstream_model_and_keeps_a_lone_text_a_string():
    assert _encode() == {
        "model": "claude-up",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_max_tokens_defaults_to_the_given_default():
    request = encode_request(_conversation(), "claude-up", default_max_tokens=99)
    assert request["max_tokens"] == 99


def test_conversations_max_tokens_is_sent():
    assert _encode(max_tokens=20)["max_tokens"] == 20


def test_consecutive_same_role_turns_merge_into_one():
    request = _encode(Turn(USER, (Text("One"),)), Turn(USER, (Text("Two"),)),
                      Turn(ASSISTANT, (Text("Three"),)))
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One"},
                                     {"type": "text", "text": "Two"}]},
        {"role": "assistant", "content": "Three"},
    ]


def test_tool_results_come_first_in_their_user_turn():
    request = _encode(
        Turn(USER, (Text("Hello"),)),
        Turn(ASSISTANT, (ToolCall("toolu_1", "f", "{}"),)),
        Turn(USER, (Text("Also this."),)),
        Turn(USER, (ToolResult("toolu_1", (Text("Sunny"),)),)),
    )
    assert request["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
        {"type": "text", "text": "Also this."},
    ]


def test_empty_text_is_left_out():
    request = _encode(Turn(USER, (Text(""), Text("Hi"))))
    assert request["messages"] == [{"role": "user", "content": "Hi"}]


def test_tool_call_becomes_tool_use_with_input_object():
    request = _encode(Turn(USER, (Text("Hi"),)),
                      Turn(ASSISTANT, (ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),)))
    assert request["messages"][1]["content"] == [TOOL_USE]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments):
    with pytest.raises(APIError) as caught:
        _encode(Turn(USER, (Text("Hi"),)), Turn(ASSISTANT, (ToolCall("t", "f", arguments),)))
    assert (caught.value.status, caught.value.param) == (400, "messages[1].content[0]")


def test_tool_result_with_an_image_is_sent_as_blocks_with_its_error_flag():
    result = ToolResult("toolu_1", (Text("Chart:"), Image(url="https://x/c.png")), True)
    block = _encode(Turn(USER, (result,)))["messages"][0]["content"][0]
    assert block == {
        "type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
        "content": [{"type": "text", "text": "Chart:"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/c.png"}}],
    }


def test_inline_image_becomes_base64_image_block():
    image = Image(media_type="image/png", data="iVBOR")
    assert _encode(Turn(USER, (image,)))["messages"][0]["content"] == [{
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
    }]


def test_signed_reasoning_becomes_thinking_and_unsigned_is_dropped():
    turn = Turn(ASSISTANT, (Reasoning("Hmm.", "sig"), Reasoning("Unsigned."), Text("Done.")))
    assert _encode(Turn(USER, (Text("Hi"),)), turn)["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "text", "text": "Done."},
    ]


def test_system_prompts_join_into_top_level_system():
    assert _encode(system=["Be brief.", "Be kind."])["system"] == "Be brief.\n\nBe kind."


def test_conversation_without_content_is_refused():
    with pytest.raises(APIError) as caught:
        _encode(Turn(USER, (Text(""),)), system=["Be brief."])
    assert (caught.value.status, caught.value.param) == (400, "messages")


@pytest.mark.parametrize("given,sent", [(0, 0), (0.7, 0.7), (1, 1), (1.5, 1.0), (2, 1.0)])
def test_temperature_is_clamped_to_anthropics_range(given, sent):
    assert _encode(temperature=given)["temperature"] == sent


def test_sampling_stop_and_stream_are_sent():
    request = _encode(top_p=0.9, top_k=40, stop=["END", ""], stream=True)
    assert (request["top_p"], request["top_k"], request["stop_sequences"],
            request["stream"]) == (0.9, 40, ["END"], True)


def test_tools_are_sent_with_a_default_schema():
    tools = [Tool("get_weather", WEATHER["description"], WEATHER["input_schema"]),
             Tool("now")]
    assert _encode(tools=tools)["tools"] == [
        WEATHER, {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize("choice,sent", [
    (ToolChoice(AUTO), {"type": "auto"}),
    (ToolChoice(REQUIRED), {"type": "any"}),
    (ToolChoice(REQUIRED, "get_weather"), {"type": "tool", "name": "get_weather"}),
    (ToolChoice(NONE, parallel=False), {"type": "none"}),
    (ToolChoice(AUTO, parallel=False), {"type": "auto", "disable_parallel_tool_use": True}),
    (ToolChoice(REQUIRED, parallel=False), {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tool_choice_is_encoded(choice, sent):
    tools = [Tool("get_weather")]
    assert _encode(tools=tools, tool_choice=choice)["tool_choice"] == sent


def test_tool_choice_without_tools_is_not_sent():
    assert "tool_choice" not in _encode(tool_choice=ToolChoice(AUTO))


def test_user_id_becomes_metadata():
    assert _encode(metadata={"user_id": "u-42"})["metadata"] == {"user_id": "u-42"}


def test_response_format_is_dropped():
    request = _encode(response_format=ResponseFormat("json_object"))
    assert set(request) == {"model", "max_tokens", "messages"}


def test_tool_use_conversation_survives_decoding_and_encoding():
    body = {
        "model": "claude-up", "max_tokens": 100, "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "text", "text": "Checking."}, TOOL_USE]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}]},
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "metadata": {"user_id": "u-42"}, "stream": True,
    }
    assert encode_request(decode_request(body), "claude-up") == body


# Estimating input tokens


def test_estimate_counts_system_text_and_each_turns_framing():
    conversation = _conversation(system=["Be brief."])
    assert estimate_input_tokens(conversation) == (
        count_tokens("Be brief.") + TOKENS_PER_TURN + count_tokens("Hello"))


def test_estimate_charges_a_fixed_cost_per_image():
    image = Turn(USER, (Image(url="https://x/c.png"),))
    assert estimate_input_tokens(_conversation(image)) == TOKENS_PER_TURN + IMAGE_TOKENS


def test_estimate_counts_tool_calls_and_results():
    call = ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')
    conversation = _conversation(Turn(ASSISTANT, (call,)),
                                 Turn(USER, (ToolResult("toolu_1", (Text("Sunny"),)),)))
    assert estimate_input_tokens(conversation) == (
        2 * TOKENS_PER_TURN + count_tokens("get_weather")
        + count_tokens('{"city": "Paris"}') + count_tokens("Sunny"))


def test_estimate_counts_tools_and_the_prompt_they_bring():
    plain = estimate_input_tokens(_conversation())
    with_tool = estimate_input_tokens(_conversation(tools=[Tool("now")]))
    schema = '{"name": "now", "input_schema": {"type": "object", "properties": {}}}'
    assert with_tool - plain == TOOL_PROMPT_TOKENS + count_tokens(schema)


# Decoding whole answers

MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-up",
    "content": [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
        {"type": "text", "text": "Checking."},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        TOOL_USE,
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 10, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 20, "output_tokens": 7},
}


def test_reply_keeps_thinking_text_and_tool_use_in_order():
    assert decode_reply(MESSAGE).parts == [
        Reasoning("Hmm.", "sig"), Text("Checking."),
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
    ]


def test_reply_usage_counts_cached_prompt_tokens():
    assert decode_reply(MESSAGE).usage == Usage(130, 7, 100)


@pytest.mark.parametrize("reason,stop", [
    ("end_turn", END), ("max_tokens", LENGTH), ("stop_sequence", STOP_SEQUENCE),
    ("tool_use", TOOL_CALLS), ("refusal", CONTENT_FILTER), ("pause_turn", PAUSE),
    ("model_context_window_exceeded", LENGTH), ("something_new", END), (None, END),
])
def test_stop_reason_is_decoded(reason, stop):
    assert decode_reply({**MESSAGE, "stop_reason": reason}).stop == stop


def test_reply_keeps_id_and_stop_sequence():
    reply = decode_reply({**MESSAGE, "stop_reason": "stop_sequence", "stop_sequence": "END"})
    assert (reply.id, reply.stop_sequence) == ("msg_01", "END")


@pytest.mark.parametrize("document", [{"type": "error"}, [], "message"])
def test_a_document_that_is_not_a_message_is_not_a_reply(document):
    with pytest.raises(ValueError):
        decode_reply(document)


# Encoding whole answers

REPLY = Reply(
    "msg_01",
    [Reasoning("Hmm.", "sig"), Text("Checking."),
     ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')],
    TOOL_CALLS, Usage(130, 7, 100),
)


def test_reply_is_a_message_naming_the_public_model():
    assert encode_reply(REPLY, _conversation(), 0) == {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "public",
        "content": [
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            TOOL_USE,
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 100},
    }


def test_reply_id_without_prefix_gets_one():
    assert encode_reply(Reply("abc", []), _conversation(), 0)["id"] == "msg_abc"


def test_unparsable_tool_arguments_are_sent_as_no_input():
    reply = Reply("msg_1", [ToolCall("toolu_1", "f", "{broken")], TOOL_CALLS)
    assert encode_reply(reply, _conversation(), 0)["content"][0]["input"] == {}


def test_reply_survives_encoding_and_decoding():
    assert decode_reply(encode_reply(REPLY, _conversation(), 0)) == REPLY


def test_encoded_reply_is_a_valid_sdk_message():
    types = pytest.importorskip("anthropic.types")
    message = types.Message.model_validate(encode_reply(REPLY, _conversation(), 0))
    assert message.content[2].input == {"city": "Paris"}


# Decoding streams, as Anthropic sends them (event type, data)


def _start(message_id="msg_02", **usage):
    message = {"id": message_id, "type": "message", "role": "assistant", "content": [],
               "model": "claude-up", "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 25, "output_tokens": 1, **usage}}
    return ("message_start", {"type": "message_start", "message": message})


def _block_start(index, block):
    return ("content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block})


def _delta(index, **delta):
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": delta})


def _message_delta(reason, output_tokens, sequence=None):
    return ("message_delta", {"type": "message_delta",
                              "delta": {"stop_reason": reason, "stop_sequence": sequence},
                              "usage": {"output_tokens": output_tokens}})


STOP = ("message_stop", {"type": "message_stop"})
TEXT_BLOCK = {"type": "text", "text": ""}


def _feed(events):
    decoder = StreamDecoder()
    return [e for kind, data in events for e in decoder.feed(kind, data)]


def test_text_stream_decodes_to_started_deltas_finished():
    events = [_start(cache_read_input_tokens=5), _block_start(0, TEXT_BLOCK),
              ("ping", {"type": "ping"}), _delta(0, type="text_delta", text="Hello"),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              _message_delta("end_turn", 6), STOP]
    assert _feed(events) == [Started("msg_02", Usage(30, 1, 5)), TextDelta("Hello"),
                             Finished(END, Usage(30, 6, 5))]


def test_tool_calls_are_numbered_from_zero_across_blocks():
    events = [_start(), _block_start(0, TEXT_BLOCK), _delta(0, type="text_delta", text="Hi"),
              _block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
              _delta(1, type="input_json_delta", partial_json='{"a": 1}'),
              _block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}),
              _delta(2, type="input_json_delta", partial_json="{}")]
    assert _feed(events)[2:] == [
        ToolCallStarted(0, "toolu_a", "f"), ToolArgumentsDelta(0, '{"a": 1}'),
        ToolCallStarted(1, "toolu_b", "g"), ToolArgumentsDelta(1, "{}"),
    ]


def test_thinking_and_signature_deltas_are_reasoning():
    block = {"type": "thinking", "thinking": "", "signature": ""}
    events = [_start(), _block_start(0, block), _delta(0, type="thinking_delta", thinking="Hm"),
              _delta(0, type="signature_delta", signature="sig")]
    assert _feed(events)[1:] == [ReasoningDelta("Hm"), ReasoningDelta("", "sig")]


def test_stop_reason_and_sequence_arrive_at_message_stop():
    events = [_start(), _message_delta("stop_sequence", 3, "END")]
    assert _feed(events) == [Started("msg_02", Usage(25, 1))]
    assert _feed(events + [STOP])[-1] == Finished(STOP_SEQUENCE, Usage(25, 3), "END")


def test_stream_usage_is_none_before_message_start_then_openais():
    decoder = StreamDecoder()
    assert decoder.usage is None
    for kind, data in [_start(cache_creation_input_tokens=10), _message_delta("end_turn", 9)]:
        decoder.feed(kind, data)
    assert decoder.usage == {"prompt_tokens": 35, "completion_tokens": 9, "total_tokens": 44}


def test_error_event_raises_the_mapped_error():
    data = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(APIError) as caught:
        StreamDecoder().feed("error", data)
    assert (caught.value.status, caught.value.code) == (503, "upstream_overloaded")


@pytest.mark.parametrize("kind", ["ping", "something_new"])
def test_events_llmedge_does_not_know_stand_for_nothing(kind):
    assert StreamDecoder().feed(kind, {"type": kind}) == []


# Encoding streams


def _frames(data: bytes) -> list[tuple[str, dict]]:
    """
    The (event, data) pairs of SSE bytes, checking their framing.
    """
    frames = data.split(b"\n\n")
    assert frames[-1] == b""
    pairs = []
    for frame in frames[:-1]:
        event, payload = frame.split(b"\n")
        assert event.startswith(b"event: ") and payload.startswith(b"data: ")
        pairs.append((event[7:].decode(), json.loads(payload[6:])))
    return pairs


def _stream(events, conversation=None):
    encoder = StreamEncoder(conversation or _conversation(), 0)
    return b"".join(encoder.encode(e) for e in events) + encoder.end()


MIXED = [
    Started("msg_03", Usage(10, 1)),
    TextDelta("Checking."),
    ToolCallStarted(0, "toolu_1", "get_weather"),
    ToolArgumentsDelta(0, '{"city": "Paris"}'),
    ReasoningDelta("Hmm."),
    ReasoningDelta("", "sig"),
    TextDelta("Done."),
    Finished(TOOL_CALLS, Usage(10, 20)),
]


def test_stream_is_message_start_ping_blocks_message_delta_message_stop():
    assert [kind for kind, _ in _frames(_stream(MIXED))] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]


def test_every_block_is_numbered_from_zero():
    indexes = [data["index"] for kind, data in _frames(_stream(MIXED))
               if kind == "content_block_start"]
    assert indexes == [0, 1, 2, 3]


def test_message_start_names_the_public_model_and_prompt_usage():
    message = _frames(_stream(MIXED))[0][1]["message"]
    assert (message["id"], message["model"], message["content"], message["usage"]) == (
        "msg_03", "public", [], {"input_tokens": 10, "output_tokens": 1})


def test_message_delta_carries_stop_reason_and_final_usage():
    delta = _frames(_stream(MIXED))[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 20


def test_stream_without_deltas_is_still_a_whole_message():
    kinds = [k for k, _ in _frames(_stream([Started("msg_1"), Finished(END)]))]
    assert kinds == ["message_start", "ping", "message_delta", "message_stop"]


def test_tool_call_without_arguments_is_a_whole_block():
    events = [Started("msg_1"), ToolCallStarted(0, "toolu_1", "now"), Finished(TOOL_CALLS)]
    assert [k for k, _ in _frames(_stream(events))][2:4] == [
        "content_block_start", "content_block_stop"]


def test_events_before_started_open_the_message_first():
    assert _frames(_stream([TextDelta("Hi")]))[0][0] == "message_start"


def test_end_after_finished_writes_nothing():
    encoder = StreamEncoder(_conversation(), 0)
    encoder.encode(Started("msg_1"))
    encoder.encode(Finished(END))
    assert encoder.end() == b""


def test_end_without_finished_finishes_the_message():
    encoder = StreamEncoder(_conversation(), 0)
    encoder.encode(Started("msg_1"))
    encoder.encode(TextDelta("Hi"))
    assert [k for k, _ in _frames(encoder.end())] == [
        "content_block_stop", "message_delta", "message_stop"]


def test_fail_writes_an_anthropic_error_event():
    encoder = StreamEncoder(_conversation(), 0)
    encoder.encode(Started("msg_1"))
    error = APIError(503, "The model's provider is overloaded.", type="upstream_error")
    assert _frames(encoder.fail(error)) == [("error", {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "The model's provider is overloaded."},
    })]


def test_stream_survives_encoding_and_decoding():
    events = [*MIXED[:-1], Finished(TOOL_CALLS, Usage(10, 20, 4), None)]
    events[0] = Started("msg_03", Usage(10, 1, 4))
    assert _feed(_frames(_stream(events))) == events


def test_streamed_reply_accumulates_to_the_reply():
    accumulator = Accumulator()
    for event in _feed(_frames(_stream(events_of(REPLY)))):
        accumulator.feed(event)
    assert accumulator.reply == REPLY


def test_encoded_stream_is_what_the_sdk_accumulates_into_the_message():
    streaming = pytest.importorskip("anthropic.lib.streaming._messages")
    types = pytest.importorskip("anthropic.types")
    pydantic = pytest.importorskip("pydantic")
    adapter = pydantic.TypeAdapter(types.RawMessageStreamEvent)
    snapshot, buffers = None, {}
    for kind, data in _frames(_stream(events_of(REPLY))):
        if kind != "ping":
            snapshot = streaming.accumulate_event(
                event=adapter.validate_python(data), current_snapshot=snapshot,
                json_bufs=buffers)
    assert snapshot.model_dump(exclude_none=True)["content"] == \
        encode_reply(REPLY, _conversation(), 0)["content"]


# Errors


@pytest.mark.parametrize("status,kind", [
    (400, "invalid_request_error"), (405, "invalid_request_error"),
    (415, "invalid_request_error"), (422, "invalid_request_error"),
    (408, "invalid_request_error"), (401, "authentication_error"),
    (403, "permission_error"), (404, "not_found_error"), (413, "request_too_large"),
    (429, "rate_limit_error"), (503, "overloaded_error"), (529, "overloaded_error"),
    (504, "timeout_error"), (500, "api_error"), (502, "api_error"),
])
def test_error_type_follows_the_status(status, kind):
    body = json.loads(error_body(APIError(status, "Nope.")))
    assert body == {"type": "error", "error": {"type": kind, "message": "Nope."}}


def test_error_body_carries_the_request_id_when_given():
    assert json.loads(error_body(APIError(400, "Nope."), "req_1"))["request_id"] == "req_1"


def test_upstream_credentials_failure_is_not_the_clients_fault():
    error = error_from_anthropic(401, b'{"error": {"message": "invalid x-api-key"}}')
    assert (error.status, error.code) == (502, "upstream_auth_failed")


def test_upstream_rate_limit_passes_retry_after_on():
    error = error_from_anthropic(429, b"{}", {"Retry-After": "7"})
    assert (error.status, error.headers) == (429, ((b"Retry-After", b"7"),))


def test_upstream_error_page_that_is_not_json_is_never_shown():
    error = error_from_anthropic(500, b"<html>secret stack</html>")
    assert "secret" not in error.message and error.status == 502


def test_error_event_of_unknown_type_is_an_upstream_failure():
    error = error_from_event({"type": "error", "error": {"type": "new", "message": "?"}})
    assert (error.status, error.code) == (502, "upstream_error")
