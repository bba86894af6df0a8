# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
Raw HTTP/1.1 and server-sent-event bytes, built by hand so that a test, or
the hostile fake upstream (L{llmedge.testing.hostile}), can send exactly
what it means to: nothing here checks or normalises anything, so a header
may repeat, a value may hold a NUL, a length may lie.

  - L{head}, L{response}, L{chunk}, L{LAST_CHUNK}: an HTTP/1.1 response in
    one of the three framings a body can have.
  - L{sse}: events framed as C{text/event-stream}, with any line end.
  - L{chat_completion}, L{chat_chunk}, L{text_completion},
    L{embedding_list}, L{anthropic_message}, L{anthropic_events},
    L{error}: the documents the fake's well-formed answers are made of,
    deterministic (fixed ids and C{created}) so tests can compare them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from llmedge.testing.upstream_openai import dumps, usage
from llmedge.testing.upstream_options import PROMPT_TOKENS

#: The well-formed answers' text, in the pieces a stream sends it in.
PIECES = ("Hello", " from", " upstream.")
TEXT = "".join(PIECES)
#: The fixed C{created} of every document, so answers are deterministic.
CREATED = 1_800_000_000
#: The zero-length chunk that ends a chunked body (no trailers).
LAST_CHUNK = b"0\r\n\r\n"

Headers = Mapping[Any, Any] | Iterable[tuple[Any, Any]]


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def head(status: int | bytes, headers: Headers = ()) -> bytes:
    """
    A status line and header block, ended by the blank line.

    @param status: a code (its standard reason phrase is added) or the
        whole status line as bytes, for lines no code can make
        (C{b"HTTP/1.0 200 OK"}, C{b"HTTP/1.1 999"}, garbage).
    @param headers: C{(name, value)} pairs (or a mapping), written in
        order, as given: str or bytes, duplicates and odd bytes kept.
    """
    if isinstance(status, bytes):
        line = status
    else:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}".encode()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines = [line] + [_bytes(name) + b": " + _bytes(value) for name, value in pairs]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """
    C{data} as one chunk of a chunked body; empty data makes no chunk (an
    empty chunk would end the body).
    """
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def response(status: int | bytes, headers: Headers = (), body: bytes = b"",
             framing: str = "length") -> bytes:
    """
    A whole response: L{head} with the framing header added after
    C{headers}, then the body framed that way.

    @param framing: C{"length"} adds C{Content-Length}; C{"chunked"} adds
        C{Transfer-Encoding: chunked} and sends the body as one chunk and
        the last chunk; C{"close"} adds C{Connection: close} and sends the
        body bare, ended only by closing the connection (the sender must
        close it). A test that wants a lying or missing framing header
        passes its own C{headers} and C{framing="close"}'s bare body
        through L{head} instead.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if framing == "length":
        return head(status, pairs + [(b"Content-Length", len(body))]) + body
    if framing == "chunked":
        return head(status, pairs + [(b"Transfer-Encoding", b"chunked")]) + chunk(body) + LAST_CHUNK
    if framing == "close":
        return head(status, pairs + [(b"Connection", b"close")]) + body
    raise ValueError(f"framing is length, chunked or close, not {framing!r}")


def sse(*events: Any, line_end: bytes = b"\n") -> bytes:
    """
    Events framed as C{text/event-stream}, each ended by a blank line.

    Each event is either its data (bytes, str, or a document sent as
    JSON; data with line breaks becomes several C{data:} lines, as the
    format asks) or a sequence of C{(field, value)} pairs written in order
    (C{("event", "ping")}, C{("id", 3)}, C{("retry", 1000)}, C{("",
    "comment")} for a comment line). C{line_end} may be C{b"\\r\\n"} or
    C{b"\\r"}: the format allows all three.
    """
    out = []
    for event in events:
        if isinstance(event, (bytes, str, dict)) or not isinstance(event, Sequence):
            data = event if isinstance(event, (bytes, str)) else dumps(event)
            pairs: Sequence[tuple[Any, Any]] = [
                ("data", line) for line in _bytes(data).split(b"\n")
            ]
        else:
            pairs = event
        for field, value in pairs:
            out.append(_bytes(field) + b": " + _bytes(value) + line_end)
        out.append(line_end)
    return b"".join(out)


def openai_usage(completion_tokens: int = len(PIECES)) -> dict[str, int]:
    """
    OpenAI's usage block for the fixed prompt and C{completion_tokens}.
    """
    return usage(completion_tokens)


def chat_completion(content: str = TEXT, model: str = "hostile", id: str = "chatcmpl-hostile",
                    finish_reason: str = "stop", usage: dict | None = None) -> dict[str, Any]:
    """
    An OpenAI C{chat.completion} document with one choice.
    """
    return {
        "id": id, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": openai_usage() if usage is None else usage,
    }


def chat_chunk(delta: dict[str, Any] | None = None, model: str = "hostile",
               finish_reason: str | None = None, id: str = "chatcmpl-hostile",
               **extra: Any) -> dict[str, Any]:
    """
    An OpenAI C{chat.completion.chunk} with one choice carrying C{delta}
    (C{{}} when omitted); C{extra} adds top-level fields, such as
    C{usage=None} (on every chunk when usage was asked for) or
    C{choices=[]} with C{usage=...} for the usage chunk.
    """
    document = {
        "id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "choices": [{"index": 0, "delta": {} if delta is None else delta,
                     "logprobs": None, "finish_reason": finish_reason}],
    }
    document.update(extra)
    return document


def text_completion(text: str = TEXT, model: str = "hostile", finish_reason: str | None = "stop",
                    usage: dict | None = None) -> dict[str, Any]:
    """
    An OpenAI legacy C{text_completion} document (a stream sends pieces of
    it, C{finish_reason} null until the last, usage only when given).
    """
    document: dict[str, Any] = {
        "id": "cmpl-hostile", "object": "text_completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None,
                     "finish_reason": finish_reason}],
    }
    if usage is not None:
        document["usage"] = usage
    return document


def embedding_list(count: int = 1, model: str = "hostile") -> dict[str, Any]:
    """
    An OpenAI embeddings C{list} of C{count} small fixed vectors.
    """
    return {
        "object": "list", "model": model,
        "data": [{"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125, float(i)]}
                 for i in range(count)],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
    }


def anthropic_message(text: str = TEXT, model: str = "hostile") -> dict[str, Any]:
    """
    An Anthropic Messages API C{message} with one text block.
    """
    return {
        "id": "msg_hostile", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": len(PIECES)},
    }


def anthropic_events(model: str = "hostile") -> list[list[tuple[str, bytes]]]:
    """
    The events of a streamed Anthropic message, for L{sse}: message_start,
    content_block_start, ping, one content_block_delta per piece,
    content_block_stop, message_delta (with the usage), message_stop.
    """
    start = {**anthropic_message("", model), "content": [], "stop_reason": None,
             "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}
    documents = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": piece}} for piece in PIECES),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": len(PIECES)}},
        {"type": "message_stop"},
    ]
    return [[("event", d["type"]), ("data", dumps(d))] for d in documents]


def error(message: str, type: str = "invalid_request_error", code: str | None = None,
          param: str | None = None) -> dict[str, Any]:
    """
    OpenAI's error document.
    """
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
