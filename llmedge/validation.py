# -*- test-case-name: tests.unit.test_validation -*-
"""
Checks on OpenAI request bodies, made before a request costs an upstream call.

A malformed body passed on comes back worded the provider's way, sometimes not
as JSON, while clients built on OpenAI's SDKs expect OpenAI's 400 naming the
field at fault. So llmedge checks what OpenAI documents (required fields, JSON
types, ranges), and whatever llmedge itself reads (the mock, the token
estimate, the Anthropic translation) is checked before anything reads it; no
more: unknown fields pass untouched, as providers add fields faster than
llmedge could learn them, and each validator returns the very dict it was
given, nothing copied, stripped or reordered.

A failure is an L{invalid_request} naming the field by its path, with the
codes and wording of L{llmedge.checks}; a field valid alone but not with the
others (C{stream_options} without C{stream}) has the code L{None}.
"""

from __future__ import annotations

from typing import Any

from llmedge.checks import (
    ANY_OBJECT,
    COUNT_MAX,
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING,
    Check,
    array_of,
    bad_value,
    boolean,
    by_type,
    check_fields,
    integer,
    join,
    json_type,
    missing,
    non_empty_string,
    number,
    object_with,
    one_of,
    own,
    require,
    string,
    string_or,
    values_of,
    wrong_type,
)
from llmedge.errors import invalid_request

__all__ = ["INVALID_TYPE", "INVALID_VALUE", "MISSING", "validate_chat", "validate_completion",
           "validate_embedding"]


#: A seed is any signed 64-bit integer.
_SEED = (-(2**63), 2**63 - 1)
#: The most embedding dimensions a request may ask for. OpenAI's largest
#: model has 3072; open models served by OpenAI-compatible servers reach
#: 4096 (Qwen3-Embedding-8B, NV-Embed-v2) and models built on 70B-class
#: LLMs 8192. Twice that refuses no real model, and stops a typo such as
#: 10000000 from building a 229 MB answer.
MAX_DIMENSIONS = 16384


_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_CONTENT_TYPES = "a string or an array of content parts"
_IMAGE_URL = object_with({"detail": string}, required={"url": string})
_PART = by_type({
    "text": own("text", string),
    # A bare URL string is no OpenAI form, but vLLM takes it and so does
    # llmedge's Anthropic translation.
    "image_url": own(
        "image_url", string_or(dict, _IMAGE_URL, "an object with a 'url'")
    ),
    "input_audio": own("input_audio", object_with({"data": string, "format": string})),
    "file": own(
        "file", object_with({"file_data": string, "file_id": string, "filename": string})
    ),
    "refusal": own("refusal", string),
})
_CONTENT = string_or(list, array_of(_PART), _CONTENT_TYPES)
_FUNCTION_CALL = object_with({"name": string, "arguments": string})
_TOOL_CALL = object_with({"id": string, "type": string, "function": _FUNCTION_CALL})


#: Roles whose message may be just a role and a string.
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})


def _message(message: Any, path: str) -> None:
    if (
        type(message) is dict and len(message) == 2
        and type(message.get("content")) is str
        and type(message.get("role")) is str and message["role"] in _PLAIN_ROLES
    ):
        return  # the common case, checked in a fraction of the time
    ANY_OBJECT(message, path)
    role = require(message, "role", one_of(*_ROLES), path)
    content_path = join(path, "content")
    if message.get("content") is not None:
        _CONTENT(message["content"], content_path)
    elif role != "assistant":
        # Only an assistant turn may be nothing but tool or function calls.
        if "content" not in message:
            raise missing(content_path)
        raise wrong_type(content_path, _CONTENT_TYPES, None)
    if role == "tool":
        require(message, "tool_call_id", string, path)
    elif role == "assistant":
        check_fields(message, {"tool_calls": array_of(_TOOL_CALL)}, path)
    check_fields(message, {"name": string}, path)


_FUNCTION = object_with(
    {"description": string, "parameters": ANY_OBJECT, "strict": boolean},
    required={"name": string},
)


def _tool(tool: Any, path: str) -> None:
    """
    A tool: a function's declaration (C{type} may be left out, as vLLM
    allows), or a kind of tool llmedge does not know, passed on.
    """
    ANY_OBJECT(tool, path)
    check_fields(tool, {"type": string}, path)
    if tool.get("type", "function") == "function":
        require(tool, "function", _FUNCTION, path)


def _tool_choice(choice: Any, path: str) -> None:
    ANY_OBJECT(choice, path)
    if require(choice, "type", string, path) == "function":
        require(choice, "function", object_with(required={"name": string}), path)


_TOKEN = integer(0)


def _token_ids(min_items: int) -> Check:
    """
    An array of token ids, checked in C where it is valid (a 10 MB body
    holds four million ids: one at a time, that is 1.5 s of the reactor),
    and one at a time only to name the first bad one.
    """
    one_by_one = array_of(_TOKEN, min_items)

    def check(value: Any, path: str) -> None:
        if type(value) is list and len(value) >= min_items and (
            not value
            or set(map(type, value)) == {int} and 0 <= min(value) <= max(value) <= COUNT_MAX
        ):
            return
        one_by_one(value, path)

    return check


_TOKENS = _token_ids(min_items=1)
_ONE_INPUT_OF_TOKENS = _token_ids(min_items=0)  # its length is not the input count
_TEXTS_OR_TOKENS = (
    "a string, an array of strings, an array of token ids, "
    "or an array of arrays of token ids"
)


def _texts_or_tokens(text: Check, max_inputs: int | None = None) -> Check:
    """
    The shapes OpenAI takes for C{prompt} and C{input}: the first element of
    an array decides which shape the whole array must have.
    """

    def check(value: Any, path: str) -> None:
        if type(value) is str:
            return text(value, path)
        if type(value) is not list:
            raise wrong_type(path, _TEXTS_OR_TOKENS, value)
        if not value:
            raise bad_value(path, "a non-empty array", value)
        if type(value[0]) is int:
            _ONE_INPUT_OF_TOKENS(value, path)
        else:
            each = _TOKENS if type(value[0]) is list else text
            array_of(each, 1, max_inputs)(value, path)

    return check


_SAMPLING: dict[str, Check] = {
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "n": integer(1, 128),
    "max_tokens": integer(1),
    "max_completion_tokens": integer(1),
    "stream": boolean,
    "stream_options": object_with({"include_usage": boolean}),
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "stop": string_or(
        list, array_of(string, 1, 4), "a string or an array of strings"
    ),
    "seed": integer(*_SEED),
    "user": string,
    "logit_bias": values_of(number(-100, 100)),
    "top_logprobs": integer(0, 20),
    "response_format": object_with(
        {"json_schema": object_with({"name": string, "description": string,
                                     "schema": ANY_OBJECT, "strict": boolean})},
        required={"type": one_of("text", "json_object", "json_schema")},
    ),
    "tools": array_of(_tool),
    "tool_choice": string_or(dict, _tool_choice, "a string or an object"),
    "parallel_tool_calls": boolean,
}
_CHAT = {**_SAMPLING, "logprobs": boolean}
_COMPLETION = {
    **_SAMPLING,
    "logprobs": integer(0, 5),
    "echo": boolean,
    "suffix": string,
    "best_of": integer(1),
}
_EMBEDDING: dict[str, Check] = {
    "encoding_format": one_of("float", "base64"),
    "dimensions": integer(1, MAX_DIMENSIONS),
    "user": string,
}


def _start(body: Any) -> None:
    if type(body) is not dict:
        message = f"The request body must be a JSON object, but got {json_type(body)}."
        raise invalid_request(message, None, INVALID_TYPE)
    require(body, "model", non_empty_string)


def _stream_options_need_stream(body: dict) -> None:
    if body.get("stream_options") is not None and body.get("stream") is not True:
        message = "The 'stream_options' parameter is only allowed when 'stream' is "
        raise invalid_request(message + "enabled.", "stream_options")


def validate_chat(body: Any) -> dict[str, Any]:
    """
    Check a C{/v1/chat/completions} body; return it, or raise L{APIError}.
    """
    _start(body)
    require(body, "messages", array_of(_message, min_items=1))
    check_fields(body, _CHAT)
    _stream_options_need_stream(body)
    return body


def validate_completion(body: Any) -> dict[str, Any]:
    """
    Check a legacy C{/v1/completions} body; return it, or raise L{APIError}.
    """
    _start(body)
    require(body, "prompt", _texts_or_tokens(string))
    check_fields(body, _COMPLETION)
    _stream_options_need_stream(body)
    best_of, n = body.get("best_of"), body.get("n")
    if best_of is not None and best_of < (n or 1):
        # Each of the n choices returned is the best of best_of candidates.
        raise bad_value("best_of", f"an integer of at least n ({n or 1})", best_of)
    return body


def validate_embedding(body: Any) -> dict[str, Any]:
    """
    Check a C{/v1/embeddings} body; return it, or raise L{APIError}.

    Unlike a prompt, an input may not be empty: there is nothing to embed.
    """
    _start(body)
    require(body, "input", _texts_or_tokens(non_empty_string, max_inputs=2048))
    check_fields(body, _EMBEDDING)
    return body
