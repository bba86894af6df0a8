# -*- test-case-name: tests.unit.test_openai_stream -*-
"""
Relaying an OpenAI-compatible stream: chunks byte for byte, the token usage
noted wherever the server puts it, and the usage llmedge asked for itself
kept from the client.

Servers put the usage in different places: OpenAI (with
C{stream_options.include_usage}) gives every chunk C{"usage": null} and the
totals on a last chunk with C{"choices": []}; LiteLLM ends with a chunk
whose only choice has an empty delta, plus the usage; vLLM with continuous
usage stats puts a running total on every chunk. So the usage is read from
any chunk that has one, the last one seen winning.

When llmedge asked for the usage and the client did not, the client must
see the chunks it would have seen without asking: the C{usage} key goes
from every chunk that has one, and a chunk that carried a usage and
nothing else for the client (no choices, or choices with an empty delta,
no finish reason and no log probabilities) is not sent. A chunk with a
null usage is always sent (without it): the server would have sent it
anyway, as OpenAI does its null-usage chunks.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from llmedge.jsonwire import loads


class ChunkRelay:
    """
    Relay OpenAI chunks, checking each is a JSON object, noting the usage,
    and holding back the usage llmedge asked for itself (C{strip_usage}).

    A chunk that is not changed is sent as it came, except that line breaks
    (JSON whitespace, when an upstream split an event over several
    C{data:} lines) become spaces: one event must be one C{data:} line
    for every client to read it. A chunk that loses its usage is sent
    compact, or, for OpenAI's C{"usage":null} on every chunk, as it came
    with those bytes cut out (a slice instead of a re-serialisation on
    each chunk of the stream).

    @ivar usage: the last non-null C{usage} object seen.
    """

    def __init__(self, strip_usage: bool) -> None:
        self.usage: dict | None = None
        self._strip_usage = strip_usage

    def __call__(
        self, event: bytes | None, data: bytes, deliver: Callable[[bytes], None]
    ) -> bool:
        if data == b"[DONE]":
            return True
        chunk = loads(data, constants=True)
        if not isinstance(chunk, dict):
            raise ValueError("not an object")
        if "usage" in chunk:
            usage = chunk["usage"]
            if isinstance(usage, dict):
                self.usage = usage
            if self._strip_usage:
                del chunk["usage"]
                if usage is None:
                    data = _without_null_usage(data) or _compact(chunk)
                elif _for_the_client(chunk):
                    data = _compact(chunk)
                else:
                    return False
        if data.find(b"\n") >= 0 or data.find(b"\r") >= 0:  # find: cheaper than "in"
            # Strict JSON has raw line breaks only between tokens.
            data = data.replace(b"\r", b" ").replace(b"\n", b" ")
        deliver(data)
        return False


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _for_the_client(chunk: dict) -> bool:
    """
    Whether a chunk without its usage still tells the client something:
    a choice with a non-empty delta (or legacy C{text}), a finish reason,
    log probabilities, or anything else not empty besides its index.
    """
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return not _blank(choices)
    for choice in choices:
        if not isinstance(choice, dict):
            return True
        for key, value in choice.items():
            if key == "index":
                continue
            if key == "delta" and isinstance(value, dict):
                if not all(_blank(v) for v in value.values()):
                    return True
            elif not _blank(value):
                return True
    return False


_NULL_USAGE = b'"usage":null'


def _without_null_usage(data: bytes) -> bytes | None:
    """
    C{data} with its top-level C{"usage":null} cut out, when that can be
    done safely on the bytes (the compact form OpenAI sends on every chunk),
    else L{None}.

    Safe because: without C{\\u} escapes, every key C{usage} is spelled
    C{"usage"}, so when those bytes occur once they are the top-level key
    the parse found (its value null); a comma next to it is the member
    separator that goes with it.
    """
    at = data.find(_NULL_USAGE)
    if at < 1 or data.count(b'"usage"') != 1:
        return None
    if data.find(b"\\") >= 0 and b"\\u" in data:  # most chunks have no backslash at all
        return None
    end = at + len(_NULL_USAGE)
    if data[at - 1:at] == b",":
        return data[:at - 1] + data[end:]
    if data[end:end + 1] == b",":
        return data[:at] + data[end + 1:]
    return None


def _compact(chunk: dict) -> bytes:
    try:
        return json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, escaped in the upstream's JSON
        return json.dumps(chunk, separators=(",", ":")).encode("ascii")
