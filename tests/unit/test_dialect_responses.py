"""
Specification of the Responses codec (L{llmedge.dialects.responses} and
L{llmedge.dialects.responses_reply}): a C{/v1/responses} body as a
conversation, and a reply as the response object or the event stream the
openai SDK reads.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from hypothesis import given, settings, strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmedge.checks import INVALID_TYPE, INVALID_VALUE, MISSING
from llmedge.dialects.conversation import (
    ASSISTANT,
    AUTO,
    Conversation,
    NONE,
    REQUIRED,
    USER,
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
from llmedge.dialects.responses import decode_request, usage_of
from llmedge.dialects.responses_reply import StreamEncoder, encode_reply
from llmedge.errors import APIError

CREATED = 1_700_000_000
EVENTS = TypeAdapter(ResponseStreamEvent)
RESPONSE = TypeAdapter(Response)


def decode(**fields):
    return decode_request({"model": "m", "input": "hi", **fields})


def items(*items):
    return decode_request({"model": "m", "input": list(items)})


def refusal(body: dict) -> APIError:
    with pytest.raises(APIError) as caught:
        decode_request(body)
    assert caught.value.status == 400
    return caught.value


def sse(stream: bytes) -> list[tuple[str, dict]]:
    """
    The (event name, data) pairs of an SSE byte stream, each event checked
    to be framed as C{event:}, C{data:} and a blank line.
    """
    assert stream.endswith(b"\n\n")
    events = []
    for block in stream[:-2].split(b"\n\n"):
        name, data = block.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        events.append((name[7:].decode(), json.loads(data[6:])))
    return events


def stream_of(events, conversation=None) -> bytes:
    encoder = StreamEncoder(conversation or decode(), CREATED)
    return b"".join(encoder.encode(event) for event in events) + encoder.end()


def accumulated(events) -> Reply:
    accumulator = Accumulator()
    for event in events:
        accumulator.feed(event)
    return accumulator.reply


def sdk_client(document: bytes, content_type: str) -> openai.OpenAI:
    """
    An openai client whose every request is answered with C{document}, in
    memory: the SDK's own parsing, no network.
    """
    def answer(request):
        return httpx2.Response(200, headers={"content-type": content_type}, content=document)

    return openai.OpenAI(api_key="sk-test", base_url="http://llmedge.invalid/v1",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


TEXT_AND_CALL = [
    Started("abc", Usage(5, 0)), ReasoningDelta("Think"), ReasoningDelta("ing."),
    TextDelta("Hel"), TextDelta("lo"), ToolCallStarted(0, "call_1", "f"),
    ToolArgumentsDelta(0, '{"a":'), ToolArgumentsDelta(0, "1}"),
    Finished(TOOL_CALLS, Usage(5, 7, 2)),
]


# -- the request: the body and its input ------------------------------------------


def test_the_body_must_be_an_object():
    error = refusal(["m"])
    assert (error.param, error.code) == (None, INVALID_TYPE)


def test_the_model_is_required():
    error = refusal({"input": "hi"})
    assert (error.param, error.code) == ("model", MISSING)


def test_the_model_is_the_public_name_asked_for():
    assert decode(model="gpt-4o").model == "gpt-4o"


def test_a_string_input_is_one_user_turn():
    assert decode(input="hello").turns == [Turn(USER, (Text("hello"),))]


def test_the_input_is_required_when_nothing_stored_is_named():
    error = refusal({"model": "m"})
    assert (error.param, error.code) == ("input", MISSING)


def test_an_input_neither_string_nor_list_is_refused():
    error = refusal({"model": "m", "input": {"role": "user"}})
    assert (error.param, error.code) == ("input", INVALID_TYPE)


def test_an_input_item_that_is_not_an_object_is_refused():
    error = refusal({"model": "m", "input": ["hi"]})
    assert (error.param, error.code) == ("input[0]", INVALID_TYPE)


def test_a_message_needs_no_type():
    conversation = items({"role": "user", "content": "a"},
                         {"type": "message", "role": "user", "content": "b"})
    assert conversation.turns == [Turn(USER, (Text("a"),)), Turn(USER, (Text("b"),))]


def test_input_and_output_text_parts_are_text():
    conversation = items({"role": "user", "content": [
        {"type": "input_text", "text": "a"}, {"type": "output_text", "text": "b"}]})
    assert conversation.turns[0].parts == (Text("a"), Text("b"))


def test_an_http_image_is_an_image_by_url():
    conversation = items({"role": "user", "content": [
        {"type": "input_image", "image_url": "https://x.test/cat.png", "detail": "auto"}]})
    assert conversation.turns[0].parts == (Image(url="https://x.test/cat.png"),)


def test_a_data_url_image_is_an_inline_image():
    conversation = items({"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]})
    assert conversation.turns[0].parts == (Image(media_type="image/png", data="AAAA"),)


def test_an_image_url_neither_http_nor_base64_data_is_refused():
    error = refusal({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "ftp://x.test/cat.png"}]}]})
    assert (error.param, error.code) == ("input[0].content[0].image_url", INVALID_VALUE)


def test_an_image_with_neither_url_nor_file_is_refused():
    error = refusal({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "detail": "auto"}]}]})
    assert (error.param, error.code) == ("input[0].content[0].image_url", MISSING)


def test_an_image_by_file_id_is_unsupported():
    conversation = items({"role": "user", "content": [
        {"type": "input_image", "file_id": "file-1"}]})
    assert conversation.unsupported[0][0] == "input[0].content[0].file_id"


def test_a_refusal_part_is_dropped():
    conversation = items({"role": "assistant", "content": [
        {"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": "ok"}]})
    assert conversation.turns == [Turn(ASSISTANT, (Text("ok"),))]


@pytest.mark.parametrize("part", [
    {"type": "input_file", "file_id": "file-1"},
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
])
def test_file_and_audio_parts_are_unsupported(part):
    conversation = items({"role": "user", "content": [part]})
    param, message = conversation.unsupported[0]
    assert param == "input[0].content[0].type" and part["type"] in message


def test_system_and_developer_messages_are_system_prompts_in_order():
    conversation = items({"role": "system", "content": "s"},
                         {"role": "developer", "content": [{"type": "input_text", "text": "d"}]},
                         {"role": "user", "content": "u"})
    assert conversation.system == ["s", "d"]
    assert conversation.turns == [Turn(USER, (Text("u"),))]


def test_an_image_in_a_system_message_is_unsupported():
    conversation = items({"role": "system", "content": [
        {"type": "refusal", "refusal": "x"}, {"type": "input_text", "text": "s"},
        {"type": "input_image", "image_url": "https://x.test/a.png"}]})
    assert conversation.unsupported[0][0] == "input[0].content[2].type"
    assert conversation.system == ["s"]


def test_instructions_are_the_first_system_prompt():
    conversation = decode_request({"model": "m", "instructions": "i",
                                   "input": [{"role": "system", "content": "s"}]})
    assert conversation.system == ["i", "s"]


def test_a_role_not_known_is_refused():
    error = refusal({"model": "m", "input": [{"role": "tool", "content": "x"}]})
    assert (error.param, error.code) == ("input[0].role", INVALID_VALUE)


def test_a_message_without_content_is_refused():
    error = refusal({"model": "m", "input": [{"role": "user"}]})
    assert (error.param, error.code) == ("input[0].content", MISSING)


def test_a_part_type_that_is_not_a_string_is_refused():
    body = {"model": "m", "input": [{"role": "user", "content": "a"}] * 3 + [
        {"role": "user", "content": [{"type": 7}]}]}
    error = refusal(body)
    assert (error.param, error.code) == ("input[3].content[0].type", INVALID_TYPE)


def test_a_text_part_without_text_is_refused():
    error = refusal({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text"}]}]})
    assert (error.param, error.code) == ("input[0].content[0].text", MISSING)


def test_function_calls_join_the_assistant_message_before_them():
    conversation = items(
        {"role": "user", "content": "weather?"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Looking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f",
         "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": ""},
    )
    assert conversation.turns[1] == Turn(ASSISTANT, (
        Text("Looking."), ToolCall("c1", "f", "{}"), ToolCall("c2", "g", "")))


def test_a_function_call_needs_a_call_id():
    error = refusal({"model": "m", "input": [
        {"type": "function_call", "name": "f", "arguments": "{}"}]})
    assert (error.param, error.code) == ("input[0].call_id", MISSING)


def test_function_call_arguments_must_be_text():
    error = refusal({"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {}}]})
    assert (error.param, error.code) == ("input[0].arguments", INVALID_TYPE)


def test_function_call_outputs_are_one_user_turn_of_results():
    conversation = items(
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": ""},
    )
    assert conversation.turns[1] == Turn(USER, (
        ToolResult("c1", (Text("sunny"),)), ToolResult("c2", ())))


def test_a_function_call_output_may_be_text_and_image_parts():
    conversation = items({"type": "function_call_output", "call_id": "c1", "output": [
        {"type": "input_text", "text": "see"},
        {"type": "input_image", "image_url": "https://x.test/a.png"}]})
    assert conversation.turns[0].parts == (
        ToolResult("c1", (Text("see"), Image(url="https://x.test/a.png"))),)


def test_a_function_call_output_without_a_call_id_is_unsupported():
    conversation = items({"type": "function_call_output", "output": "x"})
    assert (conversation.unsupported[0][0], conversation.turns) == ("input[0].call_id", [])


def test_a_function_call_output_without_output_is_refused():
    error = refusal({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "c1"}]})
    assert (error.param, error.code) == ("input[0].output", MISSING)


def test_a_user_message_after_results_is_a_turn_of_its_own():
    conversation = items(
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
        {"role": "user", "content": "and now?"},
    )
    assert [turn.role for turn in conversation.turns] == [USER, USER]


def test_a_reasoning_item_is_reasoning_from_its_summaries():
    conversation = items(
        {"type": "reasoning", "id": "rs_1", "encrypted_content": "opaque", "summary": [
            {"type": "summary_text", "text": "First."},
            {"type": "summary_text", "text": "Then."}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    )
    assert conversation.turns == [Turn(ASSISTANT, (
        Reasoning("First.\n\nThen."), ToolCall("c1", "f", "{}")))]


def test_a_reasoning_item_without_summary_text_is_dropped():
    conversation = items({"role": "user", "content": "a"},
                         {"type": "reasoning", "id": "rs_1", "summary": []})
    assert conversation.turns == [Turn(USER, (Text("a"),))]


@pytest.mark.parametrize("item", [
    {"type": "item_reference", "id": "msg_1"},
    {"id": "msg_1"},
])
def test_an_item_reference_is_unsupported(item):
    param, message = items(item).unsupported[0]
    assert param == "input[0]" and "does not store responses" in message


def test_other_item_types_are_unsupported():
    conversation = items({"role": "user", "content": "a"},
                         {"type": "web_search_call", "id": "ws_1", "status": "completed"})
    assert conversation.unsupported == [(
        "input[1].type",
        "Input items of type 'web_search_call' are not supported by this model's provider.")]


# -- the request: tools, settings, and what needs stored state ------------------


def test_function_tools_are_tools():
    conversation = decode(tools=[{"type": "function", "name": "f", "description": "d",
                                  "parameters": {"type": "object"}, "strict": True}])
    assert conversation.tools == [Tool("f", "d", {"type": "object"}, True)]


def test_a_function_tool_without_a_name_is_refused():
    error = refusal({"model": "m", "input": "hi", "tools": [{"type": "function"}]})
    assert (error.param, error.code) == ("tools[0].name", MISSING)


def test_a_tool_that_is_not_an_object_is_refused():
    error = refusal({"model": "m", "input": "hi", "tools": [[]]})
    assert (error.param, error.code) == ("tools[0]", INVALID_TYPE)


def test_hosted_tools_are_unsupported():
    conversation = decode(tools=[{"type": "function", "name": "f"}, {"type": "web_search"}])
    assert conversation.unsupported == [(
        "tools[1].type", "Tools of type 'web_search' are not supported by this model's provider.")]


@pytest.mark.parametrize("choice, mode", [("auto", AUTO), ("none", NONE), ("required", REQUIRED)])
def test_a_tool_choice_mode_is_kept(choice, mode):
    assert decode(tool_choice=choice).tool_choice == ToolChoice(mode)


def test_a_function_tool_choice_forces_that_function():
    choice = decode(tool_choice={"type": "function", "name": "f"}, parallel_tool_calls=False)
    assert choice.tool_choice == ToolChoice(REQUIRED, "f", False)


def test_parallel_tool_calls_alone_is_a_tool_choice():
    assert decode(parallel_tool_calls=False).tool_choice == ToolChoice(AUTO, None, False)


def test_a_tool_choice_mode_not_known_is_refused():
    error = refusal({"model": "m", "input": "hi", "tool_choice": "any"})
    assert (error.param, error.code) == ("tool_choice", INVALID_VALUE)


def test_a_hosted_tool_choice_is_unsupported():
    conversation = decode(tool_choice={"type": "file_search"})
    assert conversation.unsupported[0][0] == "tool_choice.type"
    assert conversation.tool_choice is None


def test_sampling_settings_are_kept():
    conversation = decode(max_output_tokens=100, temperature=0.5, top_p=0.9, stream=True)
    assert (conversation.max_tokens, conversation.temperature, conversation.top_p,
            conversation.stream) == (100, 0.5, 0.9, True)


@pytest.mark.parametrize("field, value, code", [
    ("max_output_tokens", 0, INVALID_VALUE),
    ("max_output_tokens", 1.5, INVALID_TYPE),
    ("temperature", 2.5, INVALID_VALUE),
    ("top_p", "1", INVALID_TYPE),
    ("stream", 1, INVALID_TYPE),
    ("instructions", ["a"], INVALID_TYPE),
    ("text", "json", INVALID_TYPE),
    ("store", "no", INVALID_TYPE),
])
def test_a_setting_of_the_wrong_type_or_range_is_refused(field, value, code):
    error = refusal({"model": "m", "input": "hi", field: value})
    assert (error.param, error.code) == (field, code)


def test_a_json_schema_text_format_is_the_response_format():
    form = {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}
    conversation = decode(text={"format": form, "verbosity": "low"})
    assert conversation.response_format == ResponseFormat(
        "json_schema", "n", {"type": "object"}, True)


def test_a_json_object_text_format_is_json_mode():
    conversation = decode(text={"format": {"type": "json_object"}})
    assert conversation.response_format == ResponseFormat("json_object")


def test_a_text_format_is_no_response_format():
    assert decode(text={"format": {"type": "text"}}).response_format is None


def test_a_text_format_not_known_is_unsupported():
    conversation = decode(text={"format": {"type": "yaml"}})
    assert conversation.unsupported[0][0] == "text.format.type"
    assert conversation.response_format is None


def test_a_text_format_without_a_type_is_refused():
    error = refusal({"model": "m", "input": "hi", "text": {"format": {"name": "n"}}})
    assert (error.param, error.code) == ("text.format.type", MISSING)


def test_a_json_schema_format_needs_its_schema():
    error = refusal({"model": "m", "input": "hi",
                     "text": {"format": {"type": "json_schema", "name": "n"}}})
    assert (error.param, error.code) == ("text.format.schema", MISSING)


def test_metadata_is_kept():
    assert decode(metadata={"a": "b"}).metadata == {"a": "b"}


def test_metadata_of_more_than_16_keys_is_refused():
    error = refusal({"model": "m", "input": "hi",
                     "metadata": {str(n): "v" for n in range(17)}})
    assert (error.param, error.code) == ("metadata", INVALID_VALUE)


def test_a_metadata_value_that_is_not_a_string_is_refused():
    error = refusal({"model": "m", "input": "hi", "metadata": {"k": 1}})
    assert (error.param, error.code) == ("metadata.k", INVALID_TYPE)


def test_the_user_is_the_metadata_user_id():
    assert decode(user="u1").metadata == {"user_id": "u1"}


def test_the_safety_identifier_is_the_metadata_user_id_before_the_user():
    assert decode(user="u1", safety_identifier="s1").metadata == {"user_id": "s1"}


def test_a_previous_response_id_is_unsupported_with_what_to_do():
    conversation = decode_request({"model": "m", "previous_response_id": "resp_1"})
    assert conversation.unsupported == [("previous_response_id", (
        "llmedge does not store responses; previous_response_id needs a provider serving "
        "the Responses API natively. Send the whole conversation in input instead."))]


@pytest.mark.parametrize("field, value", [
    ("store", True), ("background", True), ("conversation", "conv_1"),
    ("prompt", {"id": "pmpt_1"}),
])
def test_asking_for_stored_state_is_unsupported(field, value):
    param, message = decode(**{field: value}).unsupported[0]
    assert param == field and "natively" in message


def test_store_false_is_no_state():
    assert decode(store=False, background=False).unsupported == []


def test_the_first_unsupported_parameter_is_refused_when_translating():
    conversation = decode(store=True, tools=[{"type": "mcp"}])
    with pytest.raises(APIError) as caught:
        conversation.refuse_unsupported()
    assert (caught.value.param, caught.value.code) == ("store", "unsupported_parameter")


def test_openai_only_settings_and_unknown_fields_are_dropped():
    conversation = decode(reasoning={"effort": "high"}, include=["reasoning.encrypted_content"],
                          truncation="auto", service_tier="flex", prompt_cache_key="k",
                          future_field={"x": 1})
    assert conversation.unsupported == [] and conversation.turns == [Turn(USER, (Text("hi"),))]


# -- the usage of an answer from a native upstream ------------------------------


def test_usage_of_a_response_is_openais_usage():
    document = {"usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
                          "input_tokens_details": {"cached_tokens": 0}}}
    assert usage_of(document) == {"prompt_tokens": 10, "completion_tokens": 4,
                                  "total_tokens": 14}


def test_usage_of_a_completed_event_is_its_responses():
    event = {"type": "response.completed", "response": {
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}}
    assert usage_of(event)["total_tokens"] == 3


def test_usage_keeps_the_cached_tokens():
    document = {"usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
                          "input_tokens_details": {"cached_tokens": 6}}}
    assert usage_of(document)["prompt_tokens_details"] == {"cached_tokens": 6}


@pytest.mark.parametrize("document", [
    {}, {"usage": None}, {"usage": {"input_tokens": 1}},
    {"usage": {"input_tokens": True, "output_tokens": 1}},
    {"usage": {"input_tokens": -1, "output_tokens": 1}}, [],
])
def test_no_usage_or_a_malformed_one_is_none(document):
    assert usage_of(document) is None


# -- the answer ---------------------------------------------------------------


def reply(*parts, stop=END, usage=None, id="abc"):
    return Reply(id, list(parts), stop, usage or Usage(3, 4, 1))


def test_the_response_id_is_prefixed_and_alphanumeric():
    assert encode_reply(reply(id="chatcmpl-a.b_c"), decode(), CREATED)["id"] == (
        "resp_chatcmplabc")


def test_a_response_id_already_prefixed_is_not_prefixed_again():
    assert encode_reply(reply(id="resp_123"), decode(), CREATED)["id"] == "resp_123"


def test_the_response_names_the_model_asked_for_and_the_time():
    document = encode_reply(reply(Text("hi")), decode(model="public"), CREATED)
    assert (document["object"], document["model"], document["created_at"]) == (
        "response", "public", CREATED)


@pytest.mark.parametrize("stop", [END, STOP_SEQUENCE, TOOL_CALLS, PAUSE])
def test_an_answer_not_cut_is_completed(stop):
    document = encode_reply(reply(Text("hi"), stop=stop), decode(), CREATED)
    assert (document["status"], document["incomplete_details"]) == ("completed", None)


@pytest.mark.parametrize("stop, reason", [
    (LENGTH, "max_output_tokens"), (CONTENT_FILTER, "content_filter")])
def test_an_answer_cut_is_incomplete_with_the_reason(stop, reason):
    document = encode_reply(reply(Text("hi"), stop=stop), decode(), CREATED)
    assert (document["status"], document["incomplete_details"]) == (
        "incomplete", {"reason": reason})


def test_the_output_items_are_in_the_replys_order():
    document = encode_reply(reply(Reasoning("r"), Text("t"), ToolCall("c1", "f", "{}")),
                            decode(), CREATED)
    assert document["output"] == [
        {"type": "reasoning", "id": "rs_abc_0", "summary": [
            {"type": "summary_text", "text": "r"}]},
        {"type": "message", "id": "msg_abc_1", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "t", "annotations": [], "logprobs": []}]},
        {"type": "function_call", "id": "fc_abc_2", "call_id": "c1", "name": "f",
         "arguments": "{}", "status": "completed"},
    ]


def test_consecutive_texts_are_one_message():
    document = encode_reply(reply(Text("a"), Text("b")), decode(), CREATED)
    assert [item["content"][0]["text"] for item in document["output"]] == ["ab"]


def test_the_usage_is_responses_usage():
    document = encode_reply(reply(Text("hi"), usage=Usage(10, 4, 6)), decode(), CREATED)
    assert document["usage"] == {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 6, "cache_write_tokens": 0},
        "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 14}


def test_the_request_is_echoed_as_responses_says_it():
    conversation = decode(instructions="Be brief.", max_output_tokens=50, temperature=0.2,
                          top_p=0.5, metadata={"k": "v"}, parallel_tool_calls=False,
                          tool_choice={"type": "function", "name": "f"},
                          tools=[{"type": "function", "name": "f", "parameters": {}}],
                          text={"format": {"type": "json_object"}})
    document = encode_reply(reply(Text("hi")), conversation, CREATED)
    assert {key: document[key] for key in (
        "instructions", "max_output_tokens", "temperature", "top_p", "metadata",
        "parallel_tool_calls", "tool_choice", "text")} == {
        "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.2,
        "top_p": 0.5, "metadata": {"k": "v"}, "parallel_tool_calls": False,
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_object"}}}
    assert document["tools"] == [{"type": "function", "name": "f", "description": None,
                                  "parameters": {}, "strict": None}]


def test_an_unset_request_is_echoed_with_defaults():
    document = encode_reply(reply(Text("hi")), decode(), CREATED)
    assert (document["instructions"], document["tool_choice"], document["tools"],
            document["text"], document["parallel_tool_calls"]) == (
        None, "auto", [], {"format": {"type": "text"}}, True)


def test_the_response_is_an_sdk_response():
    document = encode_reply(reply(Reasoning("r"), Text("t"), ToolCall("c1", "f", "{}"),
                                  stop=LENGTH), decode(), CREATED)
    assert RESPONSE.validate_python(document).output_text == "t"


def test_the_sdk_reads_the_response_as_its_own():
    document = encode_reply(reply(Text("Hello")), decode(), CREATED)
    client = sdk_client(json.dumps(document).encode(), "application/json")
    assert client.responses.create(model="m", input="hi").output_text == "Hello"


# -- the stream -----------------------------------------------------------------


def test_every_event_names_its_type_and_numbers_itself_from_zero():
    events = sse(stream_of(TEXT_AND_CALL))
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


def test_the_stream_begins_with_the_response_in_progress():
    events = sse(stream_of(TEXT_AND_CALL))
    assert [name for name, _ in events[:2]] == ["response.created", "response.in_progress"]
    assert [(data["response"]["status"], data["response"]["output"])
            for _, data in events[:2]] == [("in_progress", [])] * 2


def test_a_text_run_is_a_message_added_filled_and_done():
    events = sse(stream_of([Started("abc"), TextDelta("Hel"), TextDelta("lo"),
                            Finished(END)]))
    assert [name for name, _ in events[2:-1]] == [
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done"]
    assert events[-4][1]["text"] == "Hello"
    assert events[-2][1]["item"]["content"][0]["text"] == "Hello"


def test_a_tool_call_is_a_function_call_added_filled_and_done():
    events = sse(stream_of([Started("abc"), ToolCallStarted(0, "c1", "f"),
                            ToolArgumentsDelta(0, '{"a"'), ToolArgumentsDelta(0, ":1}"),
                            Finished(TOOL_CALLS)]))
    assert [name for name, _ in events[2:-1]] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done"]
    assert events[2][1]["item"]["arguments"] == ""
    assert events[-2][1]["item"]["arguments"] == '{"a":1}'


def test_reasoning_is_a_reasoning_item_with_a_summary():
    events = sse(stream_of([Started("abc"), ReasoningDelta("Hm"), ReasoningDelta("m."),
                            Finished(END)]))
    assert [name for name, _ in events[2:-1]] == [
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.output_item.done"]
    assert events[-2][1]["item"]["summary"] == [{"type": "summary_text", "text": "Hmm."}]


def test_interleaved_tool_calls_are_each_their_own_item():
    events = sse(stream_of([Started("abc"), ToolCallStarted(0, "c1", "f"),
                            ToolCallStarted(1, "c2", "g"), ToolArgumentsDelta(1, "{}"),
                            ToolArgumentsDelta(0, "[]"), Finished(TOOL_CALLS)]))
    done = [data["item"] for name, data in events if name == "response.output_item.done"]
    assert [(item["call_id"], item["arguments"]) for item in done] == [
        ("c1", "[]"), ("c2", "{}")]


def test_text_after_a_tool_call_is_a_new_message():
    events = sse(stream_of([Started("abc"), TextDelta("a"), ToolCallStarted(0, "c1", "f"),
                            TextDelta("b"), Finished(TOOL_CALLS)]))
    added = [data["item"]["type"] for name, data in events
             if name == "response.output_item.added"]
    assert added == ["message", "function_call", "message"]


def test_the_stream_ends_with_the_whole_response_completed():
    name, data = sse(stream_of(TEXT_AND_CALL))[-1]
    assert name == "response.completed"
    assert data["response"] == encode_reply(accumulated(TEXT_AND_CALL), decode(), CREATED)


def test_a_stream_cut_by_length_ends_incomplete():
    name, data = sse(stream_of([Started("abc"), TextDelta("a"), Finished(LENGTH)]))[-1]
    assert (name, data["response"]["incomplete_details"]) == (
        "response.incomplete", {"reason": "max_output_tokens"})


STREAMS = {
    "text, reasoning and a call": TEXT_AND_CALL,
    "no deltas": [Started("x"), Finished(END)],
    "no usage": [Started("x"), TextDelta("a"), Finished(END, None)],
    "a call without arguments": [Started("x"), ToolCallStarted(0, "c", "f"), Finished(END)],
    "text after calls": [Started("x"), ToolCallStarted(0, "c", "f"), ToolCallStarted(1, "d", "g"),
                         ToolArgumentsDelta(0, "{}"), TextDelta("t"), ToolArgumentsDelta(1, "[]"),
                         TextDelta("u"), Finished(TOOL_CALLS)],
    "a signature alone": [Started("x"), ReasoningDelta("", "sig"), TextDelta("t"),
                          Finished(END)],
}


@pytest.mark.parametrize("events", STREAMS.values(), ids=STREAMS.keys())
def test_the_final_response_is_the_reply_the_events_add_up_to(events):
    _, data = sse(stream_of(events))[-1]
    assert data["response"] == encode_reply(accumulated(events), decode(), CREATED)


def test_a_whole_reply_streamed_ends_with_its_own_response():
    whole = reply(Reasoning("r"), Text("t"), ToolCall("c1", "f", "{}"), stop=TOOL_CALLS)
    _, data = sse(stream_of(events_of(whole)))[-1]
    assert data["response"] == encode_reply(whole, decode(), CREATED)


def test_a_stream_that_did_not_start_is_started():
    events = sse(stream_of([TextDelta("a"), Finished(END)]))
    assert events[0][0] == "response.created"
    assert events[0][1]["response"]["id"] == events[-1][1]["response"]["id"]


def test_a_second_start_changes_nothing():
    events = [Started("one"), TextDelta("a"), Started("two"), TextDelta("b"), Finished(END)]
    names = [name for name, _ in sse(stream_of(events))]
    assert names.count("response.created") == 1
    assert sse(stream_of(events))[-1][1]["response"]["id"] == "resp_one"


def test_nothing_is_written_after_the_end():
    encoder = StreamEncoder(decode(), CREATED)
    encoder.encode(Started("x"))
    encoder.encode(Finished(END))
    assert (encoder.encode(TextDelta("late")), encoder.end()) == (b"", b"")


def test_a_stream_ended_without_finished_is_completed():
    encoder = StreamEncoder(decode(), CREATED)
    encoder.encode(Started("x"))
    encoder.encode(TextDelta("a"))
    assert sse(encoder.end())[-1][0] == "response.completed"


def test_a_failure_is_a_failed_response_with_the_output_so_far():
    encoder = StreamEncoder(decode(), CREATED)
    encoder.encode(Started("x"))
    encoder.encode(TextDelta("partial"))
    name, data = sse(encoder.fail(APIError(502, "upstream broke", "server_error",
                                           code="upstream_error")))[-1]
    response = data["response"]
    assert (name, response["status"], response["error"]) == (
        "response.failed", "failed", {"code": "upstream_error", "message": "upstream broke"})
    assert response["output"][0]["status"] == "in_progress"
    assert response["output"][0]["content"][0]["text"] == "partial"


def test_a_failure_without_a_code_is_named_by_its_type():
    encoder = StreamEncoder(decode(), CREATED)
    encoder.encode(Started("x"))
    _, data = sse(encoder.fail(APIError(500, "boom", "server_error")))[-1]
    assert data["response"]["error"]["code"] == "server_error"


def test_a_failure_before_the_start_starts_first():
    events = sse(StreamEncoder(decode(), CREATED).fail(APIError(500, "boom", "server_error")))
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress", "response.failed"]


def test_a_failure_after_the_end_is_an_error_event():
    encoder = StreamEncoder(decode(), CREATED)
    numbered = sse(b"".join(encoder.encode(event) for event in TEXT_AND_CALL))
    name, data = sse(encoder.fail(APIError(500, "boom", "server_error", code="x")))[0]
    assert (name, data["code"], data["message"]) == ("error", "x", "boom")
    assert data["sequence_number"] == len(numbered)


def test_every_event_is_an_sdk_stream_event():
    encoder = StreamEncoder(decode(), CREATED)
    encoder.encode(Started("x"))
    encoder.encode(TextDelta("a"))
    failed = encoder.fail(APIError(429, "slow down", "rate_limit_error",
                                   code="rate_limit_exceeded"))
    streams = [stream_of(events) for events in STREAMS.values()] + [failed]
    for name, data in sse(b"".join(streams)):
        assert EVENTS.validate_python(data).type == name


def test_the_sdk_stream_helper_accumulates_the_final_response():
    client = sdk_client(stream_of(TEXT_AND_CALL), "text/event-stream")
    with client.responses.stream(model="m", input="hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert (deltas, final.output_text) == (["Hel", "lo"], "Hello")
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].arguments == '{"a":1}'


EVENT = st.one_of(
    st.builds(TextDelta, st.text(max_size=3)),
    st.builds(ReasoningDelta, st.text(max_size=3)),
    st.tuples(st.just("call")),
    st.tuples(st.just("arguments"), st.integers(0, 3), st.text(max_size=3)),
)


def _numbered(draws) -> list:
    """
    Drawn events as a stream: calls numbered in order, each with its own id.
    """
    events, calls = [Started("p")], 0
    for draw in draws:
        if draw == ("call",):
            events.append(ToolCallStarted(calls, f"call_{calls}", "f"))
            calls += 1
        elif isinstance(draw, tuple):
            events.append(ToolArgumentsDelta(draw[1], draw[2]))
        else:
            events.append(draw)
    return events + [Finished(END, Usage(1, 2))]


@settings(max_examples=60, deadline=None)
@given(st.lists(EVENT, max_size=12))
def test_the_sdk_accepts_any_order_of_deltas(draws):
    events = _numbered(draws)
    client = sdk_client(stream_of(events), "text/event-stream")
    with client.responses.stream(model="m", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == accumulated(events).text
    assert _unparsed(final.to_dict()) == RESPONSE.validate_python(
        encode_reply(accumulated(events), decode(), CREATED)).to_dict()


def _unparsed(value):
    """
    C{value} without the C{parsed} fields the SDK's stream helper adds.
    """
    if isinstance(value, dict):
        return {k: _unparsed(v) for k, v in value.items() if not k.startswith("parsed")}
    if isinstance(value, list):
        return [_unparsed(v) for v in value]
    return value


def test_a_stream_holding_more_than_its_bound_fails_too_large():
    encoder = StreamEncoder(Conversation(model="m", turns=[]), 0, max_bytes=10)
    encoder.encode(TextDelta("0123456789"))
    with pytest.raises(APIError) as caught:
        encoder.encode(TextDelta("x"))
    assert (caught.value.status, caught.value.code) == (502, "upstream_response_too_large")
