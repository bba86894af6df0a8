# -*- test-case-name: tests.unit.test_dialect_responses_read -*-
"""
Specification of L{llmedge.dialects.responses_read.decode_reply}: a
Responses API C{response} object read back as the reply it was encoded
from.
"""

from __future__ import annotations

import pytest

from llmedge.dialects.conversation import Conversation, Reasoning, Text, ToolCall
from llmedge.dialects.reply import CONTENT_FILTER, END, LENGTH, TOOL_CALLS, Reply, Usage
from llmedge.dialects.responses_read import decode_reply
from llmedge.dialects.responses_reply import encode_reply

CREATED = 1700000000
CONVERSATION = Conversation("gpt-test", [])

#: Replies as encode_reply can tell them: no adjacent parts of one kind
#: (a run is one item), no reasoning signatures (never written), stop
#: sequences and pauses only as the end of a turn, alphanumeric ids.
REPLIES = [
    Reply("abc123", [Text("Hello")], END, Usage(10, 2), created=CREATED),
    Reply("x", [], END, Usage(), created=CREATED),
    Reply("r1", [Text("")], END, created=CREATED),
    Reply("r2", [Reasoning("thinking it over"), Text("answer")], END, Usage(5, 7, 3),
          created=CREATED),
    Reply("r3", [Reasoning("")], END, created=CREATED),
    Reply("r4", [Text("let me look"), ToolCall("call_1", "get", '{"a": 1}'),
                 ToolCall("call_2", "put", "")], TOOL_CALLS, Usage(1, 1, 1), created=CREATED),
    Reply("r5", [Text("cut sh")], LENGTH, Usage(100, 4096, 64), created=CREATED),
    Reply("r6", [ToolCall("c", "f", "{")], LENGTH, created=CREATED),
    Reply("r7", [Text("no")], CONTENT_FILTER, created=CREATED),
    Reply("r8", [Text("a"), Reasoning("b"), Text("c")], END, created=CREATED),
    Reply("r9", [Text("h\u00e9llo \U0001f600")], END, created=7),
]


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: r.id)
def test_decoding_an_encoded_reply_gives_it_back(reply):
    response = encode_reply(reply, CONVERSATION, reply.created)
    assert decode_reply(response) == reply


def test_the_id_loses_the_prefix_encoding_adds():
    assert decode_reply(encode_reply(Reply("abc", []), CONVERSATION, CREATED)).id == "abc"


def test_encoding_a_decoded_response_keeps_its_id():
    response = {"id": "resp_68af0123abcdef", "object": "response", "output": []}
    again = encode_reply(decode_reply(response), CONVERSATION, CREATED)
    assert again["id"] == "resp_68af0123abcdef"


def test_created_at_is_the_reply_created():
    assert decode_reply({"object": "response", "output": [], "created_at": 99}).created == 99


def test_message_text_parts_make_one_text():
    response = {"object": "response", "output": [{"type": "message", "content": [
        {"type": "output_text", "text": "one "}, {"type": "output_text", "text": "two"}]}]}
    assert decode_reply(response).parts == [Text("one two")]


def test_a_refusal_reads_as_text():
    response = {"object": "response", "output": [{"type": "message", "content": [
        {"type": "refusal", "refusal": "I can't help with that."}]}]}
    assert decode_reply(response).parts == [Text("I can't help with that.")]


def test_reasoning_summaries_are_paragraphs():
    response = {"object": "response", "output": [{"type": "reasoning", "summary": [
        {"type": "summary_text", "text": "first"}, {"type": "summary_text", "text": "second"}],
        "encrypted_content": "opaque"}]}
    assert decode_reply(response).parts == [Reasoning("first\n\nsecond")]


def test_items_a_reply_cannot_hold_are_left_out():
    response = {"object": "response", "output": [
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "message", "content": [{"type": "output_text", "text": "found"}]}]}
    assert decode_reply(response).parts == [Text("found")]


def test_a_function_call_is_a_tool_call_by_its_call_id():
    response = {"object": "response", "status": "completed", "output": [
        {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "f",
         "arguments": "{}"}]}
    reply = decode_reply(response)
    assert (reply.parts, reply.stop) == ([ToolCall("call_9", "f", "{}")], TOOL_CALLS)


def test_an_incomplete_response_for_an_unknown_reason_is_an_end():
    response = {"object": "response", "status": "incomplete",
                "incomplete_details": {"reason": "something_new"}, "output": []}
    assert decode_reply(response).stop == END


def test_fields_of_the_wrong_type_read_as_absent():
    response = {"object": "response", "id": 5, "created_at": "now", "usage": [],
                "output": [None, {"type": "message", "content": "text"},
                           {"type": "function_call", "call_id": 1, "name": None}]}
    assert decode_reply(response) == Reply("", [ToolCall("", "", "")], TOOL_CALLS)


def test_usage_counts_that_are_not_counts_read_as_zero():
    response = {"object": "response", "output": [], "usage": {
        "input_tokens": -1, "output_tokens": 2.5,
        "input_tokens_details": {"cached_tokens": True}}}
    assert decode_reply(response).usage == Usage()


@pytest.mark.parametrize("document", [
    None, [], "response", {"object": "chat.completion", "output": []},
    {"object": "response"}, {"object": "response", "output": {}},
])
def test_what_is_not_a_response_object_is_refused(document):
    with pytest.raises(ValueError):
        decode_reply(document)
