# -*- test-case-name: tests.unit.test_resources,tests.unit.test_body -*-
"""
Reading a request body as a JSON object, with the answers OpenAI gives when
that fails: 415 when it is not declared as JSON, 400 when it does not parse,
nests too deeply or is not an object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmedge.checks import INVALID_VALUE
from llmedge.errors import invalid_request, unsupported_media_type


#: A JSON escape of a UTF-16 surrogate: paired, it is one character; alone,
#: Python decodes it to a string that cannot be encoded as UTF-8 again, so
#: it could be neither answered nor sent upstream.
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


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

TOO_DEEP = (
    "We could not parse the JSON body of your request: it is nested too deeply "
    f"(more than {MAX_DEPTH} levels)."
)


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


def _too_deep(document: Any, raw: bytes) -> bool:
    """
    Whether the body nests deeper than L{MAX_DEPTH}: a body with no more
    brackets than that cannot, which spares nearly every body the walk (a
    walk costs less than the parse before it: 0.4 s against 1 s for 10 MB
    of empty arrays).
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    return nests_deeper_than(document, MAX_DEPTH)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def is_json_media_type(value: bytes | None) -> bool:
    """
    Whether a C{Content-Type} value is C{application/json}, parameters (such
    as C{charset=utf-8}) allowed. A plain split: Twisted's own parser builds
    an email message per call, and this is on every request's path.
    """
    if value is None:
        return False
    return value.split(b";", 1)[0].strip().lower() == b"application/json"


def read_json_object(request) -> tuple[dict[str, Any], bytes]:
    """
    The request's body as a JSON object, and the raw bytes it came from.

    @raise llmedge.errors.APIError: 415 or 400.
    """
    content_type = request.getHeader(b"content-type")
    if not is_json_media_type(content_type):
        raise unsupported_media_type(
            None if content_type is None else content_type.decode("latin-1")[:80]
        )
    raw = request.content.read()
    try:
        document = json.loads(raw, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise invalid_request(
            "We could not parse the JSON body of your request: it is not valid UTF-8."
        ) from None
    except ValueError as e:
        raise invalid_request(
            f"We could not parse the JSON body of your request: {e}."
        ) from None
    except RecursionError:
        raise invalid_request(TOO_DEEP, None, INVALID_VALUE) from None
    if _too_deep(document, raw):
        raise invalid_request(TOO_DEEP, None, INVALID_VALUE)
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(document):
        raise invalid_request(
            "We could not parse the JSON body of your request: it contains an "
            "unpaired UTF-16 surrogate escape (\\ud800-\\udfff)."
        )
    if not isinstance(document, dict):
        raise invalid_request(
            f"The request body must be a JSON object, not {_json_type(document)}."
        )
    return document, raw


def _encodable(document: Any) -> bool:
    """
    Whether every string in C{document} can be encoded as UTF-8; only
    asked of the rare bodies that escape surrogates at all.
    """
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {list: "an array", str: "a string"}.get(type(value), "a number")
