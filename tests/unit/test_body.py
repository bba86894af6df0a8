# -*- test-case-name: tests.unit.test_body -*-
"""
Specification of L{llmedge.web.body}'s bound on nesting: a body is refused
past L{MAX_DEPTH}, and one just within it survives every later step that
walks it again (re-serialised for an upstream, translated for Anthropic)
even from a stack far deeper than the daemon's.
"""

from __future__ import annotations

import io
import json

import pytest
from twisted.web.test.requesthelper import DummyRequest

from llmedge.dialects import chat, messages
from llmedge.errors import APIError
from llmedge.providers.base import Call
from llmedge.providers.openai import OpenAIProvider
from llmedge.providers.upstream import Upstream
from llmedge.checks import MAX_DEPTH, nests_deeper_than
from llmedge.web.body import read_json_object
from tests.unit.support import Harness

#: Python frames to run the later steps under: the daemon's stack is some
#: 30 frames deep where providers re-encode a body (measured in memory; a
#: real reactor adds about 20), so this is ten times the daemon's.
DEEP_STACK = 400


def nested(depth: int) -> dict:
    """
    A valid chat body nesting exactly C{depth} deep, in a field llmedge
    does not know (the body is level 1, its messages reach level 3).
    """
    value: list = []
    for _ in range(depth - 2):
        value = [value]
    return {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "extra": value}


def request_with(raw: bytes) -> DummyRequest:
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    request.content = io.BytesIO(raw)
    return request


def read(raw: bytes) -> dict:
    return read_json_object(request_with(raw))[0]


def refused(raw: bytes) -> APIError:
    with pytest.raises(APIError) as caught:
        read(raw)
    return caught.value


def to_messages_request(body: dict, model: str) -> dict:
    """
    A chat body translated for Anthropic, as the Anthropic provider does:
    decoded by the chat codec, encoded by the Messages one.
    """
    return messages.encode_request(chat.decode_request(body), model)


def at_stack_depth(frames: int, work):
    """
    Run C{work()} under C{frames} more Python frames.
    """
    if frames == 0:
        return work()
    return at_stack_depth(frames - 1, work)


def test_nesting_is_counted_in_levels_of_containers():
    assert [nests_deeper_than(v, 1) for v in (5, {}, [1, "x"], {"a": []})] == [
        False, False, False, True]
    assert not nests_deeper_than(nested(MAX_DEPTH), MAX_DEPTH)
    assert nests_deeper_than(nested(MAX_DEPTH + 1), MAX_DEPTH)


def test_body_at_the_deepest_nesting_is_accepted():
    body = nested(MAX_DEPTH)
    assert read(json.dumps(body).encode()) == body


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 950, 5000, 100_000], ids=repr)
def test_deeper_body_is_refused_as_an_invalid_value(depth):
    error = refused(json.dumps(nested(depth)).encode() if depth < 900 else
                    b'{"model": "m", "x": ' + b"[" * depth + b"]" * depth + b"}")
    assert (error.status, error.code, error.param) == (400, "invalid_value", None)
    assert error.message == (
        "We could not parse the JSON body of your request: it is nested too deeply "
        f"(more than {MAX_DEPTH} levels)."
    )


def test_brackets_inside_strings_are_not_nesting():
    body = {"model": "mock", "messages": [{"role": "user", "content": "[{" * 5000}]}
    assert read(json.dumps(body).encode()) == body


def test_deepest_body_is_reserialised_for_an_upstream_from_a_deep_stack():
    body = read(json.dumps(nested(MAX_DEPTH)).encode())
    provider = OpenAIProvider(Upstream("up", None, None, None, 60.0), "http://h/v1", None)
    call = Call("chat.completions", {**body, "stream": True}, b"{}")
    sent, _ = at_stack_depth(DEEP_STACK, lambda: provider._body(call, "upstream-name"))
    assert json.loads(sent)["extra"] == body["extra"]


def test_deepest_tool_arguments_are_translated_for_anthropic_from_a_deep_stack():
    arguments = json.dumps({"a": nested(MAX_DEPTH - 1)["extra"]})
    body = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function",
             "function": {"name": "f", "arguments": arguments}}]}]}

    def translate():
        return json.dumps(to_messages_request(body, "claude"))

    assert json.loads(at_stack_depth(DEEP_STACK, translate))["messages"][1]["content"][0][
        "input"] == json.loads(arguments)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000], ids=repr)
def test_deeper_tool_arguments_are_refused_for_anthropic(depth):
    arguments = '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    body = {"model": "m", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]}
    with pytest.raises(APIError) as caught:
        to_messages_request(body, "claude")
    assert (caught.value.param, caught.value.code) == (
        "messages[0].tool_calls[0].function.arguments", "invalid_value")


def test_site_answers_the_deepest_body_and_refuses_one_level_more():
    edge = Harness()
    good = edge.request("POST", "/v1/chat/completions", json.dumps(nested(MAX_DEPTH)).encode(),
                        headers={"Content-Type": "application/json"})
    bad = edge.request("POST", "/v1/chat/completions",
                       json.dumps(nested(MAX_DEPTH + 1)).encode(),
                       headers={"Content-Type": "application/json"})
    assert good.status == 200
    assert (bad.status, bad.json()["error"]["code"]) == (400, "invalid_value")
