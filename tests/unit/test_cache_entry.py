# -*- test-case-name: tests.unit.test_cache_entry -*-
"""
Specification of L{llmedge.cache.entry}: what the response cache keeps
for one answer reads back exactly, the whole answer's document can be had
without reading the reply, and anything else reads as absent.
"""

from __future__ import annotations

import pytest

from llmedge.cache.entry import MAGIC, Entry, body_of, dumps, loads
from llmedge.dialects.conversation import Reasoning, Text, ToolCall
from llmedge.dialects.reply import (
    CONTENT_FILTER, END, LENGTH, STOP_SEQUENCE, TOOL_CALLS, Reply, Usage,
)

BODY = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}'

REPLIES = [
    Reply("", []),
    Reply("r1", [Text("Hello")], END, Usage(10, 2), created=1700000000),
    Reply("r2", [Reasoning("thinking", "sig=="), Text("answer")], STOP_SEQUENCE,
          Usage(5, 7, 3), stop_sequence="###", created=1),
    Reply("r3", [Reasoning("no signature"), ToolCall("call_1", "get", '{"a": 1}'),
                 ToolCall("call_2", "put", "")], TOOL_CALLS, Usage(1, 1, 0)),
    Reply("r4", [Text("cut")], LENGTH, Usage(100, 4096, 64), created=42),
    Reply("r5", [Text("")], CONTENT_FILTER),
    Reply("r6", [Text("héllo \u2603 \U0001f600"), Text("lone \ud800 surrogate")]),
]


@pytest.mark.parametrize("reply", REPLIES)
def test_a_reply_reads_back_exactly(reply):
    assert loads(dumps(Entry(reply, BODY))).reply == reply


def test_the_body_reads_back_byte_for_byte():
    body = b'{"a": "\\u00e9"}\n'
    assert loads(dumps(Entry(None, body))).body == body


def test_an_entry_may_hold_no_body():
    entry = Entry(REPLIES[1], None)
    assert loads(dumps(entry)) == entry


def test_an_entry_may_hold_no_reply():
    entry = Entry(None, BODY)
    assert loads(dumps(entry)) == entry


def test_an_empty_body_is_not_a_missing_one():
    assert loads(dumps(Entry(None, b""))).body == b""


def test_body_of_gives_the_body():
    assert body_of(dumps(Entry(REPLIES[2], BODY))) == BODY


def test_body_of_an_entry_without_body_is_none():
    assert body_of(dumps(Entry(REPLIES[2], None))) is None


def test_body_of_does_not_read_the_reply():
    data = dumps(Entry(REPLIES[1], BODY))
    # The reply's bytes spoiled, same length: only loads notices.
    spoiled = data[:-5] + b"#####"
    assert body_of(spoiled) == BODY
    with pytest.raises(ValueError):
        loads(spoiled)


def test_the_format_is_version_tagged():
    assert dumps(Entry(None, BODY)).startswith(MAGIC)


def test_another_version_reads_as_malformed():
    data = dumps(Entry(REPLIES[1], BODY)).replace(b"entry/1", b"entry/2", 1)
    with pytest.raises(ValueError):
        loads(data)
    with pytest.raises(ValueError):
        body_of(data)


@pytest.mark.parametrize("data", [
    b"", b"{}", BODY, MAGIC, MAGIC + b"\x00" * 3,
])
def test_what_is_not_an_entry_reads_as_malformed(data):
    with pytest.raises(ValueError):
        loads(data)
    with pytest.raises(ValueError):
        body_of(data)


def test_a_truncated_entry_reads_as_malformed():
    data = dumps(Entry(REPLIES[2], BODY))
    for cut in (1, 10, len(data) - len(MAGIC) - 1):
        with pytest.raises(ValueError):
            loads(data[:-cut])
        with pytest.raises(ValueError):
            body_of(data[:-cut])


def test_an_entry_with_bytes_added_reads_as_malformed():
    with pytest.raises(ValueError):
        body_of(dumps(Entry(REPLIES[1], BODY)) + b"x")


def _with_reply(reply_json: bytes) -> bytes:
    """
    An entry whose reply is C{reply_json}, as a corrupt store might hold.
    """
    return dumps(Entry(None, None))[:len(MAGIC)] + (
        (-1).to_bytes(8, "big", signed=True) + len(reply_json).to_bytes(8, "big")
    ) + reply_json


def test_the_helper_makes_entries_that_load():
    good = b'{"id":"x","parts":[["t","hi"]],"stop":"end","stop_sequence":null,' \
           b'"created":0,"usage":[1,2,0]}'
    assert loads(_with_reply(good)).reply == Reply("x", [Text("hi")], END, Usage(1, 2, 0))


@pytest.mark.parametrize("reply_json", [
    b"not json",
    b"[]",
    b'{"id":"x","parts":[["t"]],"stop":"end","stop_sequence":null,"created":0,'
    b'"usage":[1,2,0]}',
    b'{"id":"x","parts":[["z","hi"]],"stop":"end","stop_sequence":null,"created":0,'
    b'"usage":[1,2,0]}',
    b'{"id":1,"parts":[],"stop":"end","stop_sequence":null,"created":0,"usage":[1,2,0]}',
    b'{"id":"x","parts":[],"stop":"end","stop_sequence":null,"created":0,"usage":[1,2]}',
    b'{"id":"x","parts":[],"stop":"end","stop_sequence":null,"created":0,"usage":[1,-2,0]}',
    b'{"id":"x","parts":[],"stop":"end","stop_sequence":null,"created":true,'
    b'"usage":[1,2,0]}',
    b'{"id":"x","parts":[],"stop":null,"stop_sequence":null,"created":0,"usage":[1,2,0]}',
    b'{"id":"x","parts":[["r","a",5]],"stop":"end","stop_sequence":null,"created":0,'
    b'"usage":[1,2,0]}',
    b"[" * 100000 + b"]" * 100000,
    b"\xff\xfe",
])
def test_a_corrupt_reply_reads_as_malformed(reply_json):
    with pytest.raises(ValueError):
        loads(_with_reply(reply_json))
