# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
The OpenAI wire format as the fake upstream speaks it: what every OpenAI
endpoint shares (errors, the stream's end), legacy completions, embeddings
and the model list; chat completions are L{llmedge.testing.upstream_chat},
the Responses API L{llmedge.testing.upstream_responses}.

Each endpoint is a "wire" object that turns an L{Ask} into documents and
framed stream events; L{llmedge.testing.upstream_answer} decides when (and
whether) they are sent. Keeping the formats free of timing keeps them
checkable against OpenAI's reference at a glance.

The shapes are OpenAI's, down to the details a proxy can get wrong: with
C{stream_options.include_usage} every chunk carries C{"usage": null} and one
last chunk has C{"choices": []} and the usage; streams end with
C{data: [DONE]}; embeddings come as base64 of little-endian float32 when
asked; a request too large for the account's tokens per minute is a 429
with the C{"tokens"} error OpenAI sends for it.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource

from llmedge.testing.upstream_options import OVERSIZE_MESSAGE, PROMPT_TOKENS

if TYPE_CHECKING:
    from llmedge.testing.upstream_options import Ask

FINGERPRINT = "fp_fake"
DONE = b"data: [DONE]\n\n"

#: The models C{GET /v1/models} lists; any name is answered, listed or not.
MODELS = ("fake", "fake-embedding")

#: Status -> (type, code) of the error OpenAI sends with it.
_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
}


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def event(document: Any) -> bytes:
    """
    One server-sent event carrying C{document}.
    """
    return b"data: " + dumps(document) + b"\n\n"


def usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def error(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """
    OpenAI's error document for C{status}.
    """
    default = "server_error" if status >= 500 else "invalid_request_error"
    type, code = _ERRORS.get(status, (default, None))
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def include_usage(body: dict[str, Any]) -> bool:
    """
    Whether a request body asks for a stream's usage chunk.
    """
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class OpenAIWire:
    """
    What every OpenAI endpoint shares: the error shape, the stream's end.
    """

    streams = False
    trailer = DONE

    def error(self, status: int, message: str, param: str | None = None) -> dict[str, Any]:
        return error(status, message, param)

    def oversize(self) -> dict[str, Any]:
        """
        OpenAI's 429 document for one request over the account's tokens
        per minute: C{type} C{"tokens"}, unlike the C{rate_limit_error} of
        a plain 429, and a message a proxy can tell apart.
        """
        return {"error": {"message": OVERSIZE_MESSAGE, "type": "tokens", "param": None,
                          "code": "rate_limit_exceeded"}}

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        """
        What is wrong with C{body} beyond its model, as C{(param, message)}.
        """
        return None

    def garbage_event(self) -> bytes:
        return b'data: {"id": this is not JSON\n\n'


class CompletionsWire(OpenAIWire):
    """
    C{POST /v1/completions}, the legacy text completion.
    """

    streams = True

    def _document(self, ask: Ask, text: str, finish: str | None) -> dict[str, Any]:
        return {
            "id": f"cmpl-fake-{ask.n}",
            "object": "text_completion",
            "created": ask.created,
            "model": ask.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }

    def answer(self, ask: Ask) -> dict[str, Any]:
        document = self._document(ask, ask.behaviour.text(), "stop")
        document["usage"] = usage(ask.behaviour.chunks)
        return document

    def events(self, ask: Ask) -> Iterator[bytes]:
        with_usage = include_usage(ask.body)
        pieces = [(ask.behaviour.piece(i), None) for i in range(ask.behaviour.chunks)]
        for text, finish in [*pieces, ("", "stop")]:
            document = self._document(ask, text, finish)
            if with_usage:
                document["usage"] = None
            yield event(document)
        if with_usage:
            last = self._document(ask, "", None)
            last["choices"] = []
            last["usage"] = usage(ask.behaviour.chunks)
            yield event(last)


def _inputs(value: Any) -> list[Any] | None:
    """
    The separate inputs of an embeddings request: a string, a list of
    tokens, or a list of either.
    """
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(token, int) for token in value):
            return [value]
        if all(isinstance(item, (str, list)) and item for item in value):
            return value
    return None


def vector(index: int, dimensions: int) -> list[float]:
    """
    The embedding of the C{index}th input: C{[index, index + 0.125, ...]},
    multiples of 1/8 so they survive float32 exactly.
    """
    return [index + j / 8 for j in range(dimensions)]


class EmbeddingsWire(OpenAIWire):
    """
    C{POST /v1/embeddings}; C{dimensions} is honoured (default 8).
    """

    def problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if _inputs(body.get("input")) is None:
            return "input", "input must be a non-empty string, list of strings or tokens"
        dimensions = body.get("dimensions", 8)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            return "dimensions", "dimensions must be an integer from 1 to 4096"
        if body.get("encoding_format", "float") not in ("float", "base64"):
            return "encoding_format", "encoding_format must be 'float' or 'base64'"
        return None

    def answer(self, ask: Ask) -> dict[str, Any]:
        inputs = _inputs(ask.body.get("input")) or []
        dimensions = ask.body.get("dimensions", 8)
        as_base64 = ask.body.get("encoding_format") == "base64"
        data = []
        for index in range(len(inputs)):
            values = vector(index, dimensions)
            embedding: Any = values
            if as_base64:
                packed = struct.pack(f"<{dimensions}f", *values)
                embedding = base64.b64encode(packed).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = PROMPT_TOKENS * len(inputs)
        return {
            "object": "list",
            "data": data,
            "model": ask.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "llmedge-fake"}


class Models(Resource):
    """
    C{GET /v1/models} and C{GET /v1/models/NAME}: any name exists.
    """

    isLeaf = True

    def render(self, request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET")
            return dumps(error(405, f"{request.method.decode()} is not allowed here"))
        name = request.path[len(b"/v1/models/"):].decode("utf-8", "replace")
        if name:
            return dumps(model(name))
        return dumps({"object": "list", "data": [model(name) for name in MODELS]})


class NotFound(Resource):
    """
    Any path the fake does not serve, answered as OpenAI does.
    """

    isLeaf = True

    def render(self, request) -> bytes:
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json")
        url = f"{request.method.decode()} {request.path.decode('utf-8', 'replace')}"
        return dumps(error(404, f"Unknown request URL: {url}."))
