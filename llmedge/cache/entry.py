# -*- test-case-name: tests.unit.test_cache_entry -*-
"""
What the response cache keeps for one answer, and its bytes in a store.

One answer is asked for two ways: as a whole document, served verbatim
(the bytes the client got the first time, so a hit cannot differ from
the miss it repeats), and as a stream, which is told again from the
L{Reply} by the route's stream encoder. An entry holds both, either may
be missing (a stream leaves no document; an answer no codec reads leaves
no reply).

The bytes are a version tag, the two lengths, the document, then the
reply as JSON. The document comes first and its length is in a fixed
header, so L{body_of} slices it out without reading the reply: a hit for
a whole answer costs a few comparisons, less than any provider. Anything
that does not read back exactly (a truncated value, another version, a
key holding something else) is a L{ValueError}, which the caller treats as
a miss: a corrupt entry must never become a wrong answer.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from llmedge.dialects.conversation import Reasoning, Text, ToolCall
from llmedge.dialects.reply import Reply, Usage

__all__ = ["Entry", "body_of", "dumps", "loads"]

#: The format's tag; a new format gets a new tag, and entries of the old
#: one read as absent (they expire on their own).
MAGIC = b"llmedge-cache-entry/1\n"
#: The lengths of the document and of the reply; -1 for one missing.
_HEADER = struct.Struct(">qq")
_START = len(MAGIC) + _HEADER.size


@dataclass(frozen=True, slots=True)
class Entry:
    """
    One cached answer.

    @ivar reply: the answer, to be told as a stream or re-encoded.
    @ivar body: the JSON bytes of the whole answer as the client got it.
    """

    reply: Reply | None
    body: bytes | None


def _part(part: Text | Reasoning | ToolCall) -> list:
    if isinstance(part, Text):
        return ["t", part.text]
    if isinstance(part, Reasoning):
        return ["r", part.text, part.signature]
    return ["c", part.id, part.name, part.arguments]


def _json(document: Any) -> bytes:
    try:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a peer escaped: keep it escaped
        return json.dumps(document, separators=(",", ":")).encode("ascii")


def _reply_bytes(reply: Reply) -> bytes:
    usage = reply.usage
    return _json({
        "id": reply.id, "parts": [_part(p) for p in reply.parts], "stop": reply.stop,
        "stop_sequence": reply.stop_sequence, "created": reply.created,
        "usage": [usage.input_tokens, usage.output_tokens, usage.cached_tokens],
    })


def dumps(entry: Entry) -> bytes:
    """
    The bytes that stand for C{entry} in a store.
    """
    reply = None if entry.reply is None else _reply_bytes(entry.reply)
    body = entry.body
    header = _HEADER.pack(-1 if body is None else len(body), -1 if reply is None else len(reply))
    return b"".join([MAGIC, header, body or b"", reply or b""])


def _lengths(data: bytes) -> tuple[int, int]:
    """
    The lengths an entry's header says, checked against its size.
    """
    if not isinstance(data, bytes) or not data.startswith(MAGIC) or len(data) < _START:
        raise ValueError("not a cache entry of this version")
    body, reply = _HEADER.unpack_from(data, len(MAGIC))
    if body < -1 or reply < -1 or _START + max(body, 0) + max(reply, 0) != len(data):
        raise ValueError("a cache entry of the wrong size")
    return body, reply


def body_of(data: bytes) -> bytes | None:
    """
    The whole answer's document in C{data}, without reading its reply.

    @raise ValueError: C{data} is not an entry of this version.
    """
    body, _ = _lengths(data)
    return None if body < 0 else data[_START:_START + body]


def _string(value: Any, optional: bool = False) -> Any:
    if isinstance(value, str) or (optional and value is None):
        return value
    raise ValueError("a cache entry with a field of the wrong type")


def _int(value: Any) -> int:
    if type(value) is int and value >= 0:
        return value
    raise ValueError("a cache entry with a bad count")


def _read_part(part: Any) -> Text | Reasoning | ToolCall:
    if isinstance(part, list) and part:
        if part[0] == "t" and len(part) == 2:
            return Text(_string(part[1]))
        if part[0] == "r" and len(part) == 3:
            return Reasoning(_string(part[1]), _string(part[2], optional=True))
        if part[0] == "c" and len(part) == 4:
            return ToolCall(_string(part[1]), _string(part[2]), _string(part[3]))
    raise ValueError("a cache entry with a bad part")


def _read_reply(data: bytes) -> Reply:
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError("a cache entry nested too deep") from None
    if not isinstance(document, dict):
        raise ValueError("a cache entry whose reply is not an object")
    parts, usage = document.get("parts"), document.get("usage")
    if not isinstance(parts, list) or not isinstance(usage, list) or len(usage) != 3:
        raise ValueError("a cache entry with a bad reply")
    return Reply(
        id=_string(document.get("id")),
        parts=[_read_part(p) for p in parts],
        stop=_string(document.get("stop")),
        usage=Usage(*(_int(n) for n in usage)),
        stop_sequence=_string(document.get("stop_sequence"), optional=True),
        created=_int(document.get("created")),
    )


def loads(data: bytes) -> Entry:
    """
    The entry C{data} stands for.

    @raise ValueError: C{data} is not a whole entry of this version.
    """
    body, reply = _lengths(data)
    document = None if body < 0 else data[_START:_START + body]
    start = _START + max(body, 0)
    return Entry(None if reply < 0 else _read_reply(data[start:start + reply]), document)
