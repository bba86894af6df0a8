# -*- test-case-name: tests.unit.test_validation -*-
"""
Checks on OpenAI request bodies, made before a request costs an upstream call.

A malformed body passed on comes back worded the provider's way, sometimes not
as JSON, while clients built on OpenAI's SDKs expect OpenAI's 400 naming the
field at fault. So llmedge checks what OpenAI documents (required fields, JSON
types, ranges) and no more: unknown fields pass untouched, as providers add
fields faster than llmedge could learn them, and each validator returns the
very dict it was given, nothing copied, stripped or reordered.

A failure is an L{invalid_request} whose C{param} is a path into the body
(C{messages[2].content}, C{stop[1]}) and whose C{code} is L{MISSING} for a
required field absent or null; L{INVALID_TYPE} for a wrong JSON type (JSON
tells C{true} from C{1} and C{1} from C{1.0}, so neither passes as an integer
here even though Python's C{bool} is an C{int}); L{INVALID_VALUE} for a value
out of range, empty or not among the choices; and L{None} for a field valid
alone but not with the others (C{stream_options} without C{stream}).

Messages name the field and what was expected but show a bad value only as a
short truncated repr or its JSON type: bodies hold users' prompts, and error
messages end up in logs and tracebacks where prompts do not belong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llmedge.errors import APIError, invalid_request

MISSING = "missing_required_parameter"
INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"

_QUOTE_LIMIT = 40

Check = Callable[[Any, str], None]

# Exact types: json.loads makes nothing else, and bool must not pass as int.
_A_TYPE = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _a(value: Any) -> str:
    return _A_TYPE.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    """
    A bad value as it may appear in a message: a scalar as short JSON,
    truncated; a container only by its type, as it may hold anything.
    """
    if isinstance(value, str):
        if len(value) > _QUOTE_LIMIT:
            value = value[:_QUOTE_LIMIT] + "…"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return _a(value)
    try:
        return json.dumps(value)[:_QUOTE_LIMIT]
    except ValueError:  # an int with more digits than Python will print
        return "an integer too long to show"


def _missing(path: str) -> APIError:
    return invalid_request(f"Missing required parameter: '{path}'.", path, MISSING)


def _wrong_type(path: str, expected: str, value: Any) -> APIError:
    message = f"Invalid type for '{path}': expected {expected}, got {_a(value)}."
    return invalid_request(message, path, INVALID_TYPE)


def _bad_value(path: str, expected: str, value: Any) -> APIError:
    message = f"Invalid value for '{path}': expected {expected}, got {_show(value)}."
    return invalid_request(message, path, INVALID_VALUE)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _of_type(kind: type, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not kind:
            raise _wrong_type(path, expected, value)

    return check


_string = _of_type(str, "a string")
_boolean = _of_type(bool, "a boolean")
_is_integer = _of_type(int, "an integer")


def _non_empty_string(value: Any, path: str) -> None:
    _string(value, path)
    if not value:
        raise _bad_value(path, "a non-empty string", value)


def _number(low: float, high: float) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) not in (int, float):
            raise _wrong_type(path, "a number", value)
        # Written so that NaN, which compares false with everything, fails.
        if not low <= value <= high:
            raise _bad_value(path, f"a number between {low} and {high}", value)

    return check


#: The largest count (of tokens, choices, dimensions) accepted: what OpenAI
#: accepts, and what upstreams written with 32-bit integers can read.
_COUNT_MAX = 2**31 - 1
#: A seed is any signed 64-bit integer.
_SEED = (-(2**63), 2**63 - 1)


def _integer(low: int, high: float = _COUNT_MAX) -> Check:
    expected = f"an integer between {low} and {high}"

    def check(value: Any, path: str) -> None:
        _is_integer(value, path)
        if not low <= value <= high:
            raise _bad_value(path, expected, value)

    return check


def _one_of(*choices: str) -> Check:
    expected = "one of " + ", ".join(repr(choice) for choice in choices)

    def check(value: Any, path: str) -> None:
        _string(value, path)
        if value not in choices:
            raise _bad_value(path, expected, value)

    return check


def _array_of(item: Check, min_items: int = 0, max_items: int | None = None) -> Check:
    if max_items is None:
        size = "a non-empty array"
    else:
        size = f"an array of {min_items} to {max_items} items"

    def check(value: Any, path: str) -> None:
        if type(value) is not list:
            raise _wrong_type(path, "an array", value)
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            raise _bad_value(path, size, value)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")

    return check


def _fields(body: dict, checks: dict[str, Check], path: str = "") -> None:
    """
    Check those of the optional C{checks} present in C{body}; null is absent.
    """
    for key, check in checks.items():
        if body.get(key) is not None:
            check(body[key], _join(path, key))


def _required(body: dict, key: str, check: Check, path: str = "") -> Any:
    if body.get(key) is None:
        raise _missing(_join(path, key))
    check(body[key], _join(path, key))
    return body[key]


def _object(optional: dict | None = None, required: dict | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not dict:
            raise _wrong_type(path, "an object", value)
        for key, field in (required or {}).items():
            _required(value, key, field, path)
        _fields(value, optional or {}, path)

    return check


_ANY_OBJECT = _object()


def _values(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        _ANY_OBJECT(value, path)
        for key, element in value.items():
            # Keys are the client's too: keep a long one out of the message.
            item(element, _join(path, key[:_QUOTE_LIMIT]))

    return check


def _string_or(kind: type, other: Check, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is kind:
            other(value, path)
        elif type(value) is not str:
            raise _wrong_type(path, expected, value)

    return check


_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_CONTENT_TYPES = "a string or an array of content parts"
_PART = _object(required={"type": _string})
_CONTENT = _string_or(list, _array_of(_PART), _CONTENT_TYPES)


def _message(message: Any, path: str) -> None:
    _ANY_OBJECT(message, path)
    role = _required(message, "role", _one_of(*_ROLES), path)
    content_path = _join(path, "content")
    if message.get("content") is not None:
        _CONTENT(message["content"], content_path)
    elif role != "assistant":
        # Only an assistant turn may be nothing but tool or function calls.
        if "content" not in message:
            raise _missing(content_path)
        raise _wrong_type(content_path, _CONTENT_TYPES, None)
    if role == "tool":
        _required(message, "tool_call_id", _string, path)
    _fields(message, {"name": _string}, path)


_TOKEN = _integer(0)
_TOKENS = _array_of(_TOKEN, min_items=1)
_ONE_INPUT_OF_TOKENS = _array_of(_TOKEN)  # its length is not the input count
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
            raise _wrong_type(path, _TEXTS_OR_TOKENS, value)
        if not value:
            raise _bad_value(path, "a non-empty array", value)
        if type(value[0]) is int:
            _ONE_INPUT_OF_TOKENS(value, path)
        else:
            each = _TOKENS if type(value[0]) is list else text
            _array_of(each, 1, max_inputs)(value, path)

    return check


_SAMPLING: dict[str, Check] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "n": _integer(1, 128),
    "max_tokens": _integer(1),
    "max_completion_tokens": _integer(1),
    "stream": _boolean,
    "stream_options": _object({"include_usage": _boolean}),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "stop": _string_or(
        list, _array_of(_string, 1, 4), "a string or an array of strings"
    ),
    "seed": _integer(*_SEED),
    "user": _string,
    "logit_bias": _values(_number(-100, 100)),
    "top_logprobs": _integer(0, 20),
    "response_format": _object(
        required={"type": _one_of("text", "json_object", "json_schema")}
    ),
    "tools": _array_of(_ANY_OBJECT),
    "tool_choice": _string_or(dict, _ANY_OBJECT, "a string or an object"),
    "parallel_tool_calls": _boolean,
}
_CHAT = {**_SAMPLING, "logprobs": _boolean}
_COMPLETION = {
    **_SAMPLING,
    "logprobs": _integer(0, 5),
    "echo": _boolean,
    "suffix": _string,
    "best_of": _integer(1),
}
_EMBEDDING: dict[str, Check] = {
    "encoding_format": _one_of("float", "base64"),
    "dimensions": _integer(1),
    "user": _string,
}


def _start(body: Any) -> None:
    if type(body) is not dict:
        message = f"The request body must be a JSON object, but got {_a(body)}."
        raise invalid_request(message, None, INVALID_TYPE)
    _required(body, "model", _non_empty_string)


def _stream_options_need_stream(body: dict) -> None:
    if body.get("stream_options") is not None and body.get("stream") is not True:
        message = "The 'stream_options' parameter is only allowed when 'stream' is "
        raise invalid_request(message + "enabled.", "stream_options")


def validate_chat(body: Any) -> dict[str, Any]:
    """
    Check a C{/v1/chat/completions} body; return it, or raise L{APIError}.
    """
    _start(body)
    _required(body, "messages", _array_of(_message, min_items=1))
    _fields(body, _CHAT)
    _stream_options_need_stream(body)
    return body


def validate_completion(body: Any) -> dict[str, Any]:
    """
    Check a legacy C{/v1/completions} body; return it, or raise L{APIError}.
    """
    _start(body)
    _required(body, "prompt", _texts_or_tokens(_string))
    _fields(body, _COMPLETION)
    _stream_options_need_stream(body)
    best_of, n = body.get("best_of"), body.get("n")
    if best_of is not None and best_of < (n or 1):
        # Each of the n choices returned is the best of best_of candidates.
        raise _bad_value("best_of", f"an integer of at least n ({n or 1})", best_of)
    return body


def validate_embedding(body: Any) -> dict[str, Any]:
    """
    Check a C{/v1/embeddings} body; return it, or raise L{APIError}.

    Unlike a prompt, an input may not be empty: there is nothing to embed.
    """
    _start(body)
    _required(body, "input", _texts_or_tokens(_non_empty_string, max_inputs=2048))
    _fields(body, _EMBEDDING)
    return body
