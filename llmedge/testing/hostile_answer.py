# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
The hostile fake upstream's well-formed answers: what it sends when a
request asks for no misbehaviour, so a test can check that the request
after a hostile one is served normally.

Every answer is a complete, self-delimited response (C{Content-Length},
or chunked for streams, one chunk per event), built from
L{llmedge.testing.hostile_wire}'s deterministic documents: the text is
L{TEXT} with fixed usage figures whatever the prompt.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from llmedge.testing.hostile_wire import (
    LAST_CHUNK, PIECES, TEXT, anthropic_events, anthropic_message, chat_chunk, chat_completion,
    chunk, dumps, embedding_list, error, head, openai_usage, response, sse, text_completion,
)
from llmedge.testing.upstream_openai import include_usage

__all__ = ["TEXT", "json_response", "normal_answer"]

JSON = (b"Content-Type", b"application/json")
EVENT_STREAM = (b"Content-Type", b"text/event-stream")
DONE = b"data: [DONE]\n\n"


def json_response(status: int, document: Any) -> bytes:
    """
    A length-delimited JSON response.
    """
    return response(status, [JSON], dumps(document))


def _stream(events: list[bytes]) -> bytes:
    return (head(200, [EVENT_STREAM, (b"Cache-Control", b"no-cache"),
                       (b"Transfer-Encoding", b"chunked")])
            + b"".join(chunk(e) for e in events) + LAST_CHUNK)


def _chat(body: dict[str, Any], model: str) -> bytes:
    if body.get("stream") is not True:
        return json_response(200, chat_completion(model=model))
    usage = include_usage(body)
    extra = {"usage": None} if usage else {}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in PIECES]
    chunks = [chat_chunk(d, model, **extra) for d in deltas]
    chunks.append(chat_chunk({}, model, "stop", **extra))
    if usage:
        chunks.append(chat_chunk(model=model, choices=[], usage=openai_usage()))
    return _stream([sse(c) for c in chunks] + [DONE])


def _completion(body: dict[str, Any], model: str) -> bytes:
    if body.get("stream") is not True:
        return json_response(200, text_completion(model=model, usage=openai_usage()))
    documents = [text_completion(p, model, None) for p in PIECES]
    documents.append(text_completion("", model, "stop"))
    if include_usage(body):
        documents.append({**text_completion("", model), "choices": [], "usage": openai_usage()})
    return _stream([sse(d) for d in documents] + [DONE])


def _embeddings(body: dict[str, Any], model: str) -> bytes:
    inputs = body.get("input")
    many = isinstance(inputs, list) and inputs and not isinstance(inputs[0], int)
    document = embedding_list(len(inputs) if many else 1, model)
    if body.get("encoding_format") == "base64":
        for item in document["data"]:
            packed = struct.pack(f"<{len(item['embedding'])}f", *item["embedding"])
            item["embedding"] = base64.b64encode(packed).decode()
    return json_response(200, document)


def _messages(body: dict[str, Any], model: str) -> bytes:
    if body.get("stream") is not True:
        return json_response(200, anthropic_message(model=model))
    return _stream([sse(e) for e in anthropic_events(model)])


#: Path ending -> the answer to a JSON object body; the first match wins.
_ROUTES = (
    ("/chat/completions", _chat),
    ("/completions", _completion),
    ("/embeddings", _embeddings),
    ("/messages", _messages),
)


def normal_answer(method: str, path: str, body: Any) -> bytes:
    """
    The well-formed response to C{method path} with the parsed JSON
    C{body} (L{None} when it was not JSON): an OpenAI document for
    C{.../chat/completions}, C{.../completions} and C{.../embeddings}, an
    Anthropic one for C{.../messages}, streamed when C{"stream": true};
    a JSON error for anything else (404, 405, 400 for a body that is not
    a JSON object).
    """
    for ending, answer in _ROUTES:
        if path.endswith(ending):
            break
    else:
        return json_response(404, error(f"no such path: {path}", code="unknown_url"))
    if method != "POST":
        return json_response(405, error(f"{method} is not allowed here",
                                        code="method_not_allowed"))
    if not isinstance(body, dict):
        return json_response(400, error("the body is not a JSON object"))
    model = body.get("model")
    return answer(body, model if isinstance(model, str) else "hostile")

