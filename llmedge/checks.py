# -*- test-case-name: tests.unit.test_validation -*-
"""
Checks of JSON values that name the field at fault, the pieces
L{llmedge.validation} describes OpenAI's request bodies with.

A check is a function of a value and its path in the body (C{messages[2].content},
C{stop[1]}) that returns nothing or raises an L{invalid_request} whose
C{param} is that path and whose C{code} is L{MISSING} for a required field
absent or null; L{INVALID_TYPE} for a wrong JSON type (JSON tells C{true}
from C{1} and C{1} from C{1.0}, so neither passes as an integer here even
though Python's C{bool} is an C{int}); or L{INVALID_VALUE} for a value out
of range, empty or not among the choices.

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

QUOTE_LIMIT = 40

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


def json_type(value: Any) -> str:
    return _A_TYPE.get(type(value), f"a {type(value).__name__}")


def show(value: Any) -> str:
    """
    A bad value as it may appear in a message: a scalar as short JSON,
    truncated; a container only by its type, as it may hold anything.
    """
    if isinstance(value, str):
        if len(value) > QUOTE_LIMIT:
            value = value[:QUOTE_LIMIT] + "…"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return json_type(value)
    try:
        return json.dumps(value)[:QUOTE_LIMIT]
    except ValueError:  # an int with more digits than Python will print
        return "an integer too long to show"


def missing(path: str) -> APIError:
    return invalid_request(f"Missing required parameter: '{path}'.", path, MISSING)


def wrong_type(path: str, expected: str, value: Any) -> APIError:
    message = f"Invalid type for '{path}': expected {expected}, got {json_type(value)}."
    return invalid_request(message, path, INVALID_TYPE)


def bad_value(path: str, expected: str, value: Any) -> APIError:
    message = f"Invalid value for '{path}': expected {expected}, got {show(value)}."
    return invalid_request(message, path, INVALID_VALUE)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def of_type(kind: type, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not kind:
            raise wrong_type(path, expected, value)

    return check


string = of_type(str, "a string")
boolean = of_type(bool, "a boolean")
is_integer = of_type(int, "an integer")


def non_empty_string(value: Any, path: str) -> None:
    string(value, path)
    if not value:
        raise bad_value(path, "a non-empty string", value)


def number(low: float, high: float) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) not in (int, float):
            raise wrong_type(path, "a number", value)
        # Written so that NaN, which compares false with everything, fails.
        if not low <= value <= high:
            raise bad_value(path, f"a number between {low} and {high}", value)

    return check


#: The largest count (of tokens, choices, dimensions) accepted: what OpenAI
#: accepts, and what upstreams written with 32-bit integers can read.
COUNT_MAX = 2**31 - 1


def integer(low: int, high: float = COUNT_MAX) -> Check:
    expected = f"an integer between {low} and {high}"

    def check(value: Any, path: str) -> None:
        is_integer(value, path)
        if not low <= value <= high:
            raise bad_value(path, expected, value)

    return check


def one_of(*choices: str) -> Check:
    expected = "one of " + ", ".join(repr(choice) for choice in choices)

    def check(value: Any, path: str) -> None:
        string(value, path)
        if value not in choices:
            raise bad_value(path, expected, value)

    return check


def array_of(item: Check, min_items: int = 0, max_items: int | None = None) -> Check:
    if max_items is None:
        size = "a non-empty array"
    else:
        size = f"an array of {min_items} to {max_items} items"

    def check(value: Any, path: str) -> None:
        if type(value) is not list:
            raise wrong_type(path, "an array", value)
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            raise bad_value(path, size, value)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")

    return check


def check_fields(body: dict, checks: dict[str, Check], path: str = "") -> None:
    """
    Check those of the optional C{checks} present in C{body}; null is absent.
    """
    for key, check in checks.items():
        if body.get(key) is not None:
            check(body[key], join(path, key))


def require(body: dict, key: str, check: Check, path: str = "") -> Any:
    if body.get(key) is None:
        raise missing(join(path, key))
    check(body[key], join(path, key))
    return body[key]


def require_key(body: dict, key: str, check: Check, path: str = "") -> None:
    """
    A required field that may not be null either: absent is missing, null
    is a wrong type, as OpenAI words it for the text of a content part.
    """
    if key not in body:
        raise missing(join(path, key))
    check(body[key], join(path, key))


def object_with(optional: dict | None = None, required: dict | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not dict:
            raise wrong_type(path, "an object", value)
        for key, field in (required or {}).items():
            require(value, key, field, path)
        check_fields(value, optional or {}, path)

    return check


ANY_OBJECT = object_with()


def values_of(item: Check) -> Check:
    def check(value: Any, path: str) -> None:
        ANY_OBJECT(value, path)
        for key, element in value.items():
            # Keys are the client's too: keep a long one out of the message.
            item(element, join(path, key[:QUOTE_LIMIT]))

    return check


def string_or(kind: type, other: Check, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is kind:
            other(value, path)
        elif type(value) is not str:
            raise wrong_type(path, expected, value)

    return check


def by_type(table: dict[str, Check]) -> Check:
    """
    An object with a string C{type}, checked further by C{table[type]};
    a type not in the table is some provider's newer kind, passed on as is.
    """

    def check(value: Any, path: str) -> None:
        ANY_OBJECT(value, path)
        kind = require(value, "type", string, path)
        more = table.get(kind)
        if more is not None:
            more(value, path)

    return check


def own(key: str, check: Check) -> Check:
    """
    An object of C{{"type": key}} carries its data under C{key} (a text
    part its C{text}, an image part its C{image_url}): absent is missing,
    null a wrong type.
    """
    return lambda value, path: require_key(value, key, check, path)


#: The deepest nesting a body may have, the body object itself being level
#: 1. Python's JSON parser gives up near its recursion limit (1000 frames
#: on Python 3.11, shared with the frames already on the stack), so a body
#: it just managed to parse (950 levels did) could not be serialised again
#: from the deeper stack where a provider re-encodes it for its upstream.
#: 128 leaves the later steps (json.dumps, the Anthropic translation) some
#: 800 levels for the stack under them, where the daemon uses about 50; it
#: is four times the deepest real bodies (OpenAI allows schemas 10 levels
#: deep, some 30 levels of JSON in a tool or response format), and what
#: serde_json, the parser of many Rust servers, accepts itself.
MAX_DEPTH = 128


def nests_deeper_than(document: Any, limit: int) -> bool:
    """
    Whether C{document} has containers nested more than C{limit} deep (a
    scalar is 0 deep, C{{}} 1, C{{"a": [1]}} 2). Level by level, with no
    recursion: it must not fail where the recursion it guards against would.
    """
    level = [document] if type(document) is dict or type(document) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner = []
        for value in level:
            for child in value.values() if type(value) is dict else value:
                if type(child) is dict or type(child) is list:
                    inner.append(child)
        level = inner
    return False
