"""
The Responses and Messages front ends through the real site, over a fake
reactor, answered by the mock: each dialect's shape, its errors, and the
protection every route has.
"""

import json

import pytest

from tests.unit.support import Harness

KEY = "sk-fronts-key"
ASK = {"model": "mock", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def edge():
    return Harness()


@pytest.fixture
def guarded():
    return Harness(environ={"AUTH_ENABLED": "true", "API_KEYS": KEY})


def test_messages_answer_is_an_anthropic_message(edge):
    message = edge.request("POST", "/v1/messages", ASK).json()
    assert message["type"] == "message" and message["model"] == "mock"
    assert message["content"] == [{"type": "text", "text": "You said: hi"}]
    assert message["stop_reason"] == "end_turn"


def test_responses_answer_is_a_response(edge):
    response = edge.request("POST", "/v1/responses", {"model": "mock", "input": "hi"}).json()
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["output"][0]["content"][0]["text"] == "You said: hi"


def test_messages_stream_is_anthropic_events(edge):
    response = edge.request("POST", "/v1/messages", {**ASK, "stream": True})
    kinds = [line[len(b"event: "):] for line in response.body.split(b"\n")
             if line.startswith(b"event: ")]
    assert kinds[0] == b"message_start" and kinds[-1] == b"message_stop"
    assert b"[DONE]" not in response.body


def test_responses_stream_numbers_its_events(edge):
    response = edge.request("POST", "/v1/responses",
                            {"model": "mock", "input": "hi", "stream": True})
    events = [json.loads(data) for data in response.events()]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"


def test_messages_refusal_without_a_key_is_in_anthropics_shape(guarded):
    response = guarded.request("POST", "/v1/messages", ASK)
    assert response.status == 401
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.header("x-request-id")


def test_messages_accepts_the_key_in_x_api_key(guarded):
    response = guarded.request("POST", "/v1/messages", ASK, headers={"x-api-key": KEY})
    assert response.status == 200


def test_chat_refusal_stays_in_openais_shape(guarded):
    response = guarded.request("POST", "/v1/chat/completions", {"model": "mock", "messages": []})
    assert response.status == 401 and "type" not in response.json()


def test_messages_without_max_tokens_is_a_400_naming_it(edge):
    response = edge.request("POST", "/v1/messages", {**ASK, "max_tokens": None})
    assert response.status == 400
    assert "max_tokens" in response.json()["error"]["message"]


def test_messages_unknown_model_is_anthropics_not_found(edge):
    response = edge.request("POST", "/v1/messages", {**ASK, "model": "nope"})
    assert response.status == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_responses_previous_response_id_is_refused_by_name(edge):
    response = edge.request("POST", "/v1/responses",
                            {"model": "mock", "input": "hi", "previous_response_id": "resp_1"})
    assert response.status == 400
    assert response.json()["error"]["param"] == "previous_response_id"


def test_count_tokens_is_estimated_for_the_mock(edge):
    body = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}
    counted = edge.request("POST", "/v1/messages/count_tokens", body).json()
    assert set(counted) == {"input_tokens"} and counted["input_tokens"] > 0


def test_messages_has_no_other_children(edge):
    assert edge.request("POST", "/v1/messages/other", ASK).status == 404


def test_the_mock_calls_a_forced_tool(edge):
    body = {**ASK, "tool_choice": {"type": "any"},
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}]}
    message = edge.request("POST", "/v1/messages", body).json()
    assert message["stop_reason"] == "tool_use"
    assert message["content"][-1]["name"] == "lookup"
    assert message["content"][-1]["input"] == {}
