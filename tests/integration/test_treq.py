"""
treq, a Twisted HTTP client, against the real daemon: what a Twisted
application embedding llmedge's clients would see.
"""

import json

import pytest_twisted
import treq

from tests.integration.conftest import API_KEY

CHAT = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "ping"}]}


@pytest_twisted.inlineCallbacks
def test_stream_arrives_as_events_ending_with_done(daemon):
    response = yield treq.post(
        daemon.base_url + "/v1/chat/completions",
        json=CHAT, unbuffered=True, headers={"x-request-id": "treq-1", "x-api-key": API_KEY})
    assert response.code == 200
    assert response.headers.getRawHeaders("x-request-id") == ["treq-1"]
    pieces = []
    yield treq.collect(response, pieces.append)
    events = [line[6:] for line in b"".join(pieces).split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "You said: ping"


@pytest_twisted.inlineCallbacks
def test_head_health_has_no_body(daemon):
    response = yield treq.head(daemon.base_url + "/health")
    assert response.code == 200
    assert (yield response.content()) == b""
