"""
Specification of L{llmedge.validation}: what the proxy accepts, and how it
refuses the rest in OpenAI's words.
"""

from __future__ import annotations

import copy
import math

import pytest

from llmedge.errors import APIError
from llmedge.validation import (
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING,
    validate_chat,
    validate_completion,
    validate_embedding,
)

DROP = object()
LONG = "x" * 10_000


def _body(base: dict, fields: dict) -> dict:
    body = copy.deepcopy(base)
    body.update(fields)
    return {key: value for key, value in body.items() if value is not DROP}


def chat(**fields):
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return validate_chat, _body(base, fields)


def completion(**fields):
    return validate_completion, _body({"model": "m", "prompt": "hi"}, fields)


def embedding(**fields):
    return validate_embedding, _body({"model": "m", "input": "hi"}, fields)


def msg(**fields):
    """
    A one-message chat whose message is C{{"role": "user", "content": "hi"}}
    changed by C{fields}.
    """
    return chat(messages=[_body({"role": "user", "content": "hi"}, fields)])


def rejected(case) -> APIError:
    validate, body = case
    with pytest.raises(APIError) as caught:
        validate(body)
    error = caught.value
    assert (error.status, error.type) == (400, "invalid_request_error")
    return error


def assert_rejected(case, param, code) -> None:
    error = rejected(case)
    assert (error.param, error.code) == (param, code)
    assert f"'{param}'" in error.message


def p(case, param, id=None):
    return pytest.param(case, param, id=id or param)


@pytest.mark.parametrize("case", [chat(), completion(), embedding()])
def test_minimal_body_is_returned_as_is(case):
    validate, body = case
    expected = copy.deepcopy(body)
    assert validate(body) is body
    assert body == expected


@pytest.mark.parametrize(
    "case",
    [
        chat(
            future_field={"anything": [1, None]},
            messages=[{"role": "user", "content": "hi", "cache": {"ttl": 5}}],
            stream=True,
            stream_options={"include_usage": True, "include_obfuscation": False},
        ),
        msg(content=[{"type": "new_part_kind", "payload": {"x": 1}}]),
        completion(provider_extra="kept"),
        embedding(input_type="query", truncate="END"),
    ],
)
def test_unknown_fields_pass_through_untouched(case):
    validate, body = case
    expected = copy.deepcopy(body)
    assert validate(body) is body
    assert body == expected


SAMPLING = {
    "temperature": 0.7,
    "top_p": 1,
    "n": 2,
    "max_tokens": 16,
    "max_completion_tokens": 16,
    "stream": True,
    "stream_options": {"include_usage": True},
    "presence_penalty": -2,
    "frequency_penalty": 2.0,
    "stop": ["a", "b", "c", "d"],
    "seed": -7,
    "user": "u-1",
    "logit_bias": {"50256": -100, "11": 100.0},
    "top_logprobs": 20,
    "response_format": {"type": "json_schema", "json_schema": {}},
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(chat(**SAMPLING, logprobs=True), id="chat"),
        pytest.param(
            completion(**SAMPLING, logprobs=5, echo=True, suffix="", best_of=3),
            id="completion",
        ),
        pytest.param(
            embedding(encoding_format="base64", dimensions=256, user="u"),
            id="embedding",
        ),
    ],
)
def test_every_documented_field_accepted_when_valid(case):
    validate, body = case
    assert validate(body) is body


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(chat(**dict.fromkeys(SAMPLING), logprobs=None), id="chat"),
        pytest.param(
            completion(**dict.fromkeys(SAMPLING), logprobs=None, best_of=None),
            id="completion",
        ),
        pytest.param(
            embedding(encoding_format=None, dimensions=None, user=None),
            id="embedding",
        ),
        pytest.param(msg(name=None), id="message-name"),
    ],
)
def test_optional_fields_may_be_null(case):
    validate, body = case
    assert validate(body) is body


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(msg(role="system"), id="system"),
        pytest.param(msg(role="developer", name="dev"), id="developer"),
        pytest.param(msg(role="function", name="f"), id="function"),
        pytest.param(msg(role="tool", tool_call_id="call_1"), id="tool"),
        pytest.param(msg(role="assistant", content=None), id="assistant-null"),
        pytest.param(msg(role="assistant", content=DROP), id="assistant-absent"),
        pytest.param(msg(content=[{"type": "text", "text": "hi"}]), id="parts"),
        pytest.param(msg(content=""), id="empty-content"),
        pytest.param(chat(temperature=0, top_p=0), id="lower-bounds"),
        pytest.param(chat(temperature=2, n=128), id="upper-bounds"),
        pytest.param(chat(stop="\n"), id="stop-string"),
        pytest.param(chat(tool_choice="auto"), id="tool-choice-string"),
        pytest.param(chat(stream=False), id="stream-false"),
        pytest.param(completion(prompt=""), id="empty-prompt"),
        pytest.param(completion(prompt=["a", "b"]), id="prompt-strings"),
        pytest.param(completion(prompt=[0, 1, 2]), id="prompt-tokens"),
        pytest.param(completion(prompt=[[1], [2, 3]]), id="prompt-token-lists"),
        pytest.param(completion(n=3, best_of=3), id="best-of-equals-n"),
        pytest.param(embedding(input=["a", "b"]), id="input-strings"),
        pytest.param(embedding(input=list(range(3000))), id="input-long-tokens"),
        pytest.param(embedding(input=[[1, 2], [3]]), id="input-token-lists"),
        pytest.param(embedding(input=["a"] * 2048), id="input-2048-strings"),
    ],
)
def test_documented_alternatives_accepted(case):
    validate, body = case
    assert validate(body) is body


@pytest.mark.parametrize(
    "validate", [validate_chat, validate_completion, validate_embedding]
)
@pytest.mark.parametrize("body", [[], "{}", 1, None, True], ids=repr)
def test_body_must_be_a_json_object(validate, body):
    error = rejected((validate, body))
    assert (error.param, error.code) == (None, INVALID_TYPE)
    assert "JSON object" in error.message


@pytest.mark.parametrize(
    "case, param",
    [
        p(chat(model=DROP), "model", "chat-model"),
        p(chat(model=None), "model", "chat-model-null"),
        p(completion(model=DROP), "model", "completion-model"),
        p(embedding(model=DROP), "model", "embedding-model"),
        p(chat(messages=DROP), "messages"),
        p(chat(messages=None), "messages", "messages-null"),
        p(msg(role=DROP), "messages[0].role"),
        p(msg(content=DROP), "messages[0].content"),
        p(msg(content=[{"text": "hi"}]), "messages[0].content[0].type"),
        p(msg(role="tool"), "messages[0].tool_call_id"),
        p(chat(response_format={}), "response_format.type"),
        p(completion(prompt=DROP), "prompt"),
        p(embedding(input=DROP), "input"),
    ],
)
def test_missing_required_field_rejected(case, param):
    assert_rejected(case, param, MISSING)


@pytest.mark.parametrize(
    "case, param",
    [
        p(chat(model=5), "model"),
        p(chat(messages={"role": "user"}), "messages"),
        p(chat(messages=[{"role": "user", "content": "a"}, "b"]), "messages[1]"),
        p(msg(role=5), "messages[0].role"),
        p(msg(content=5), "messages[0].content"),
        p(msg(content={"type": "text"}), "messages[0].content", "content-object"),
        p(msg(content=None), "messages[0].content", "user-content-null"),
        p(
            msg(role="tool", content=None, tool_call_id="c"),
            "messages[0].content",
            "tool-content-null",
        ),
        p(msg(content=["hi"]), "messages[0].content[0]"),
        p(msg(content=[{"type": 5}]), "messages[0].content[0].type"),
        p(msg(role="tool", tool_call_id=5), "messages[0].tool_call_id"),
        p(msg(name=5), "messages[0].name"),
        p(chat(temperature="hot"), "temperature"),
        p(chat(top_p="1"), "top_p"),
        p(chat(n="2"), "n"),
        p(chat(max_tokens="10"), "max_tokens"),
        p(chat(max_completion_tokens=[10]), "max_completion_tokens"),
        p(chat(stream="true"), "stream"),
        p(chat(stream=True, stream_options="on"), "stream_options"),
        p(
            chat(stream=True, stream_options={"include_usage": 1}),
            "stream_options.include_usage",
        ),
        p(chat(presence_penalty="0"), "presence_penalty"),
        p(chat(frequency_penalty=[]), "frequency_penalty"),
        p(chat(stop=5), "stop"),
        p(chat(stop={"a": 1}), "stop", "stop-object"),
        p(chat(stop=["a", 5]), "stop[1]"),
        p(chat(seed="1"), "seed"),
        p(chat(user=5), "user"),
        p(chat(logit_bias=[1]), "logit_bias"),
        p(chat(logit_bias={"50256": "-100"}), "logit_bias.50256"),
        p(chat(logprobs=1), "logprobs", "chat-logprobs"),
        p(chat(top_logprobs="5"), "top_logprobs"),
        p(chat(response_format="json_object"), "response_format"),
        p(chat(response_format={"type": 1}), "response_format.type"),
        p(chat(tools={"type": "function"}), "tools"),
        p(chat(tools=["f"]), "tools[0]"),
        p(chat(tool_choice=5), "tool_choice"),
        p(chat(tool_choice=["auto"]), "tool_choice", "tool-choice-array"),
        p(chat(parallel_tool_calls="yes"), "parallel_tool_calls"),
        p(completion(prompt=5), "prompt"),
        p(completion(prompt={"text": "hi"}), "prompt", "prompt-object"),
        p(completion(prompt=["a", 5]), "prompt[1]"),
        p(completion(prompt=[1, "a"]), "prompt[1]", "prompt-tokens-mixed"),
        p(completion(prompt=[[1, "a"]]), "prompt[0][1]"),
        p(completion(prompt=[[1], 2]), "prompt[1]", "prompt-token-lists-mixed"),
        p(completion(logprobs=True), "logprobs", "completion-logprobs"),
        p(completion(echo="yes"), "echo"),
        p(completion(suffix=5), "suffix"),
        p(completion(best_of="2"), "best_of"),
        p(completion(temperature="hot"), "temperature", "completion-temperature"),
        p(embedding(input=5), "input"),
        p(embedding(input=["a", 5]), "input[1]"),
        p(embedding(encoding_format=5), "encoding_format"),
        p(embedding(dimensions="3"), "dimensions"),
        p(embedding(user=5), "user", "embedding-user"),
    ],
)
def test_wrong_type_rejected(case, param):
    assert_rejected(case, param, INVALID_TYPE)


@pytest.mark.parametrize(
    "case, param",
    [
        p(chat(model=""), "model"),
        p(chat(messages=[]), "messages"),
        p(msg(role="wizard"), "messages[0].role"),
        p(chat(temperature=2.01), "temperature"),
        p(chat(temperature=-0.1), "temperature", "temperature-negative"),
        p(chat(top_p=1.5), "top_p"),
        p(chat(n=0), "n"),
        p(chat(n=129), "n", "n-above-128"),
        p(chat(max_tokens=0), "max_tokens"),
        p(chat(max_completion_tokens=-1), "max_completion_tokens"),
        p(chat(presence_penalty=2.5), "presence_penalty"),
        p(chat(frequency_penalty=-3), "frequency_penalty"),
        p(chat(stop=[]), "stop"),
        p(chat(stop=["a", "b", "c", "d", "e"]), "stop", "stop-five"),
        p(chat(logit_bias={"11": 100.5}), "logit_bias.11"),
        p(chat(top_logprobs=21), "top_logprobs"),
        p(chat(top_logprobs=-1), "top_logprobs", "top-logprobs-negative"),
        p(chat(response_format={"type": "xml"}), "response_format.type"),
        p(completion(logprobs=6), "logprobs"),
        p(completion(prompt=[]), "prompt"),
        p(completion(prompt=[-1]), "prompt[0]"),
        p(completion(prompt=[[1], []]), "prompt[1]"),
        p(completion(best_of=0), "best_of"),
        p(embedding(input=""), "input"),
        p(embedding(input=[]), "input", "input-empty-array"),
        p(embedding(input=["a", ""]), "input[1]"),
        p(embedding(input=[[]]), "input[0]"),
        p(embedding(input=[5, -2]), "input[1]", "input-negative-token"),
        p(embedding(input=["a"] * 2049), "input", "input-2049-strings"),
        p(embedding(encoding_format="int8"), "encoding_format"),
        p(embedding(dimensions=0), "dimensions"),
    ],
)
def test_out_of_range_rejected(case, param):
    assert_rejected(case, param, INVALID_VALUE)


@pytest.mark.parametrize(
    "case, param",
    [
        p(chat(n=True), "n"),
        p(chat(max_tokens=True), "max_tokens"),
        p(chat(seed=False), "seed"),
        p(chat(top_logprobs=False), "top_logprobs"),
        p(chat(temperature=True), "temperature"),
        p(chat(logit_bias={"11": True}), "logit_bias.11"),
        p(completion(logprobs=True), "logprobs"),
        p(completion(best_of=True), "best_of"),
        p(completion(prompt=[True]), "prompt[0]"),
        p(embedding(input=[1, True]), "input[1]"),
        p(embedding(dimensions=True), "dimensions"),
    ],
)
def test_boolean_is_not_a_number(case, param):
    assert_rejected(case, param, INVALID_TYPE)


@pytest.mark.parametrize(
    "case, param",
    [
        p(chat(n=1.5), "n"),
        p(chat(n=2.0), "n", "n-whole-float"),
        p(chat(max_tokens=10.0), "max_tokens"),
        p(chat(seed=1.0), "seed"),
        p(completion(prompt=[1.0]), "prompt[0]"),
        p(embedding(dimensions=256.0), "dimensions"),
    ],
)
def test_float_is_not_an_integer(case, param):
    assert_rejected(case, param, INVALID_TYPE)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
def test_non_finite_number_out_of_range(value):
    assert_rejected(chat(temperature=value), "temperature", INVALID_VALUE)


def test_huge_integer_rejected_without_echoing_it():
    error = rejected(chat(n=10**5000))
    assert (error.param, error.code) == ("n", INVALID_VALUE)
    assert len(error.message) < 200


@pytest.mark.parametrize("stream", [DROP, False, None], ids=repr)
def test_stream_options_only_allowed_when_streaming(stream):
    error = rejected(chat(stream=stream, stream_options={"include_usage": True}))
    assert (error.param, error.code) == ("stream_options", None)
    assert error.message == (
        "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    )


def test_best_of_below_n_rejected():
    assert_rejected(completion(n=3, best_of=2), "best_of", INVALID_VALUE)


def test_array_size_reported_by_count_not_content():
    error = rejected(chat(stop=["a", "b", "c", "d", "e"]))
    assert "expected an array of 1 to 4 items, got an array of 5 items" in error.message


def test_message_names_the_expected_range():
    error = rejected(chat(temperature=3))
    assert "a number between 0 and 2" in error.message
    assert "got 3" in error.message


def test_message_quotes_a_short_bad_value():
    error = rejected(msg(role="wizard"))
    assert '"wizard"' in error.message
    assert "'user'" in error.message


def test_message_names_the_wrong_json_type():
    error = rejected(chat(temperature="hot"))
    assert "expected a number, got a string" in error.message


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(chat(model=[LONG]), id="in-array"),
        pytest.param(chat(temperature=LONG), id="wrong-type"),
        pytest.param(msg(role=LONG), id="not-a-choice"),
        pytest.param(msg(content={"type": LONG}), id="content-object"),
        pytest.param(chat(response_format={"type": LONG}), id="nested-choice"),
        pytest.param(chat(logit_bias={LONG: "x"}), id="as-key"),
        pytest.param(completion(prompt={"text": LONG}), id="prompt-object"),
        pytest.param(embedding(encoding_format=LONG), id="encoding-format"),
        pytest.param(embedding(input=[LONG, 5]), id="input-list"),
    ],
)
def test_long_user_content_is_not_echoed(case):
    error = rejected(case)
    assert len(error.message) < 300
    assert "x" * 41 not in error.message
    assert "x" * 41 not in error.body().decode()


# -- content parts, tool calls and tools: every field llmedge reads ----------------


def part(**fields):
    """
    A chat whose user message holds a text part, then the part C{fields}.
    """
    return msg(content=[{"type": "text", "text": "hi"}, fields])


def tool(**fields):
    return chat(tools=[fields])


def tool_call(**fields):
    call = {"id": "call_1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}, **fields}
    return msg(role="assistant", content=None, tool_calls=[call])


@pytest.mark.parametrize(
    "text", [5, 1.5, ["hi"], True, None, {}], ids=["number", "float", "list", "true", "null",
                                                    "object"]
)
def test_text_part_whose_text_is_not_a_string_rejected(text):
    error = rejected(part(type="text", text=text))
    assert (error.param, error.code) == ("messages[0].content[1].text", INVALID_TYPE)
    assert "expected a string" in error.message


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(part(type="text", text=""), id="empty-text"),
        pytest.param(part(type="image_url", image_url={"url": "https://x/y.png"}), id="image"),
        pytest.param(part(type="image_url", image_url={"url": "data:,", "detail": "low"}),
                     id="image-detail"),
        pytest.param(part(type="image_url", image_url="https://x/y.png"), id="image-bare-url"),
        pytest.param(part(type="input_audio", input_audio={"data": "AAAA", "format": "wav"}),
                     id="audio"),
        pytest.param(part(type="file", file={"file_id": "file-1"}), id="file"),
        pytest.param(msg(role="assistant", content=[{"type": "refusal", "refusal": "no"}]),
                     id="refusal"),
        pytest.param(part(type="video_url", video_url=5, anything=[None]), id="unknown-type"),
        pytest.param(tool_call(), id="tool-call"),
        pytest.param(tool_call(extra={"x": 1}), id="tool-call-unknown-field"),
        pytest.param(tool(function={"name": "f"}), id="tool-without-type"),
        pytest.param(tool(type="function", function={
            "name": "f", "description": "d", "parameters": {"type": "object"},
            "strict": True}), id="tool-every-field"),
        pytest.param(tool(type="web_search", function=5, anything=[1]), id="tool-other-type"),
        pytest.param(chat(tool_choice={"type": "allowed_tools", "allowed_tools": {}}),
                     id="tool-choice-other-type"),
        pytest.param(chat(response_format={"type": "json_schema", "json_schema": {
            "name": "r", "schema": {"type": "object"}, "strict": True}}), id="json-schema"),
        pytest.param(embedding(dimensions=16384), id="dimensions-16384"),
        pytest.param(embedding(input=[[1]] * 2048), id="input-2048-token-lists"),
    ],
)
def test_documented_shapes_of_parts_tools_and_calls_accepted(case):
    validate, body = case
    expected = copy.deepcopy(body)
    assert validate(body) is body
    assert body == expected


@pytest.mark.parametrize(
    "case, param",
    [
        p(part(type="text"), "messages[0].content[1].text", "text"),
        p(part(type="image_url"), "messages[0].content[1].image_url", "image-url"),
        p(part(type="image_url", image_url={"detail": "low"}),
          "messages[0].content[1].image_url.url", "image-url-url"),
        p(part(type="input_audio"), "messages[0].content[1].input_audio", "input-audio"),
        p(part(type="file"), "messages[0].content[1].file", "file"),
        p(part(type="refusal"), "messages[0].content[1].refusal", "refusal"),
        p(tool(type="function"), "tools[0].function", "tool-function"),
        p(tool(type="function", function={"description": "d"}), "tools[0].function.name",
          "tool-function-name"),
        p(chat(tool_choice={"function": {"name": "f"}}), "tool_choice.type",
          "tool-choice-type"),
        p(chat(tool_choice={"type": "function"}), "tool_choice.function",
          "tool-choice-function"),
        p(chat(tool_choice={"type": "function", "function": {}}), "tool_choice.function.name",
          "tool-choice-function-name"),
    ],
)
def test_missing_field_of_a_part_or_tool_rejected(case, param):
    assert_rejected(case, param, MISSING)


@pytest.mark.parametrize(
    "case, param",
    [
        p(part(type="image_url", image_url=5), "messages[0].content[1].image_url",
          "image-url"),
        p(part(type="image_url", image_url=None), "messages[0].content[1].image_url",
          "image-url-null"),
        p(part(type="image_url", image_url={"url": 5}),
          "messages[0].content[1].image_url.url", "image-url-url"),
        p(part(type="image_url", image_url={"url": "u", "detail": 1}),
          "messages[0].content[1].image_url.detail", "image-url-detail"),
        p(part(type="input_audio", input_audio="AAAA"), "messages[0].content[1].input_audio",
          "input-audio"),
        p(part(type="input_audio", input_audio={"data": 1}),
          "messages[0].content[1].input_audio.data", "input-audio-data"),
        p(part(type="input_audio", input_audio={"format": []}),
          "messages[0].content[1].input_audio.format", "input-audio-format"),
        p(part(type="file", file=[]), "messages[0].content[1].file", "file"),
        p(part(type="file", file={"file_data": 1}), "messages[0].content[1].file.file_data",
          "file-data"),
        p(part(type="file", file={"file_id": True}), "messages[0].content[1].file.file_id",
          "file-id"),
        p(part(type="file", file={"filename": {}}), "messages[0].content[1].file.filename",
          "file-name"),
        p(part(type="refusal", refusal=0), "messages[0].content[1].refusal", "refusal"),
        p(tool_call(id=5), "messages[0].tool_calls[0].id", "tool-call-id"),
        p(tool_call(type=[]), "messages[0].tool_calls[0].type", "tool-call-type"),
        p(tool_call(function="f"), "messages[0].tool_calls[0].function", "tool-call-function"),
        p(tool_call(function={"name": 1}), "messages[0].tool_calls[0].function.name",
          "tool-call-function-name"),
        p(tool_call(function={"name": "f", "arguments": {"x": 1}}),
          "messages[0].tool_calls[0].function.arguments", "tool-call-arguments"),
        p(msg(role="assistant", content=None, tool_calls={"id": "c"}),
          "messages[0].tool_calls", "tool-calls"),
        p(msg(role="assistant", content=None, tool_calls=["c"]),
          "messages[0].tool_calls[0]", "tool-calls-item"),
        p(tool(type=5), "tools[0].type", "tool-type"),
        p(tool(type="function", function="f"), "tools[0].function", "tool-function"),
        p(tool(function={"name": 5}), "tools[0].function.name", "tool-function-name"),
        p(tool(function={"name": "f", "description": 5}), "tools[0].function.description",
          "tool-function-description"),
        p(tool(function={"name": "f", "parameters": "{}"}), "tools[0].function.parameters",
          "tool-function-parameters"),
        p(tool(function={"name": "f", "strict": "yes"}), "tools[0].function.strict",
          "tool-function-strict"),
        p(chat(tool_choice={"type": 5}), "tool_choice.type", "tool-choice-type"),
        p(chat(tool_choice={"type": "function", "function": "f"}), "tool_choice.function",
          "tool-choice-function"),
        p(chat(tool_choice={"type": "function", "function": {"name": []}}),
          "tool_choice.function.name", "tool-choice-function-name"),
        p(chat(response_format={"type": "json_schema", "json_schema": "s"}),
          "response_format.json_schema", "json-schema"),
        p(chat(response_format={"type": "json_schema", "json_schema": {"name": 5}}),
          "response_format.json_schema.name", "json-schema-name"),
        p(chat(response_format={"type": "json_schema", "json_schema": {"schema": []}}),
          "response_format.json_schema.schema", "json-schema-schema"),
        p(chat(response_format={"type": "json_schema", "json_schema": {"strict": 1}}),
          "response_format.json_schema.strict", "json-schema-strict"),
    ],
)
def test_wrong_type_in_a_part_tool_or_call_rejected(case, param):
    assert_rejected(case, param, INVALID_TYPE)


def test_tool_calls_of_other_roles_are_not_read():
    validate, body = msg(tool_calls="not read for a user turn")
    assert validate(body) is body


@pytest.mark.parametrize("dimensions", [16385, 10_000_000, 1_624_643_440], ids=repr)
def test_dimensions_above_16384_rejected(dimensions):
    error = rejected(embedding(dimensions=dimensions))
    assert (error.param, error.code) == ("dimensions", INVALID_VALUE)
    assert "between 1 and 16384" in error.message


def test_more_than_2048_token_list_inputs_rejected():
    assert_rejected(embedding(input=[[1]] * 2049), "input", INVALID_VALUE)


@pytest.mark.parametrize(
    "bad, code",
    [(-1, INVALID_VALUE), (2**31, INVALID_VALUE), (True, INVALID_TYPE), (1.0, INVALID_TYPE),
     ("1", INVALID_TYPE)],
    ids=repr,
)
def test_bad_token_id_in_a_long_list_is_named(bad, code):
    assert_rejected(completion(prompt=[1] * 5000 + [bad] + [2] * 10), "prompt[5000]", code)
    assert_rejected(embedding(input=[[1] * 300, [1] * 5000 + [bad]]), "input[1][5000]", code)


def test_plain_messages_still_need_a_known_role():
    assert_rejected(chat(messages=[{"role": "user", "content": "a"}, {"role": "bot",
                                                                      "content": "b"}]),
                    "messages[1].role", INVALID_VALUE)


def test_plain_tool_message_still_needs_its_call_id():
    assert_rejected(chat(messages=[{"role": "tool", "content": "42"}]),
                    "messages[0].tool_call_id", MISSING)
