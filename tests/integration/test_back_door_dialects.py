"""
The back door seen from the other dialects' front ends: an endless answer
or an endless stream event behind a Responses or Messages client is
refused at the same bounds, in the client's own error shape, with the
upstream connection dropped and the daemon's memory bounded; whether the
answer was being translated (an OpenAI-kind upstream) or passed through
(Anthropic behind Messages).
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.integration.conftest import API_KEY
from tests.integration.test_back_door import (
    EVENT_BOUND,
    MODELS,
    RESPONSE_BOUND,
    MiB,
    assert_served,
    last_entry,
    running_daemon,
    sdk_client,
)

ASK = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def daemon(hostile, tmp_path_factory):
    yield from running_daemon(hostile, tmp_path_factory)


@pytest.fixture
def client(daemon):
    return sdk_client(daemon)


@pytest.fixture
def claude(daemon):
    return anthropic.Anthropic(base_url=daemon.base_url, api_key=API_KEY, max_retries=0,
                               timeout=30)


@pytest.mark.parametrize("model", ["endless-json", "huge-length", "claude-endless"])
def test_an_endless_answer_to_a_messages_client_is_an_anthropic_502(
        claude, client, hostile, model):
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model=model, max_tokens=10, messages=ASK)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    entry = hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert entry["closed_by"] == "peer"
    assert entry["bytes_sent"] < 64 * RESPONSE_BOUND
    assert_served(client)


@pytest.mark.parametrize("model", ["endless-json", "huge-length"])
def test_an_endless_answer_to_a_responses_client_is_a_502_too_large(
        client, hostile, model):
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.create(model=model, input="hello")
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_response_too_large")
    assert hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert_served(client)


def test_endless_answers_behind_both_dialects_leave_memory_bounded(
        claude, client, daemon):
    client.responses.create(model="good", input="hello")
    before = daemon.rss()
    for _ in range(5):
        with pytest.raises(anthropic.APIStatusError):
            claude.messages.create(model="claude-endless", max_tokens=10, messages=ASK)
        with pytest.raises(openai.APIStatusError):
            client.responses.create(model="endless-json", input="hello")
    assert daemon.peak_rss() - before < 6 * RESPONSE_BOUND + 16 * MiB
    assert daemon.rss() - before < 3 * RESPONSE_BOUND + 16 * MiB
    assert_served(client)


@pytest.mark.parametrize("model", ["endless-event", "endless-line"])
def test_an_endless_event_fails_a_responses_stream(client, hostile, model):
    events = list(client.responses.create(model=model, input="hello", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "upstream_response_too_large"
    entry = hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert entry["bytes_sent"] < 64 * EVENT_BOUND
    assert_served(client)


@pytest.mark.parametrize("model", ["endless-event", "endless-line"])
def test_an_endless_event_ends_a_messages_stream_with_an_error_event(
        claude, client, hostile, model):
    with pytest.raises(anthropic.APIStatusError) as caught:
        with claude.messages.stream(model=model, max_tokens=10, messages=ASK) as stream:
            for _ in stream:
                pass
    assert caught.value.body["error"]["type"] == "api_error"
    assert "over" in caught.value.body["error"]["message"]
    entry = hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert entry["bytes_sent"] < 64 * EVENT_BOUND
    assert_served(client)


#: upstream.max_response_bytes of the daemon below: a Responses stream
#: holds one "x" per ~150-byte upstream event, so the default bound would
#: take millions of events to reach.
SMALL_BOUND = 64 * 1024


@pytest.fixture(scope="module")
def small(hostile, tmp_path_factory):
    yield from running_daemon(hostile, tmp_path_factory,
                              UPSTREAM_MAX_RESPONSE_BYTES=str(SMALL_BOUND))


def test_endless_small_events_to_a_responses_stream_stop_at_the_response_bound(small, hostile):
    # A Responses stream repeats the whole answer at its end, so it holds
    # what it relayed: an upstream streaming well-formed chunks forever is
    # cut at upstream.max_response_bytes, not run to the deadline.
    client = sdk_client(small)
    client.responses.create(model="good", input="hello")
    before = small.rss()
    events = list(client.responses.create(model="endless-events", input="hello", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "upstream_response_too_large"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert SMALL_BOUND - 1024 < len(text) <= SMALL_BOUND
    entry = hostile.wait_closed(last_entry(hostile, MODELS["endless-events"][1])["n"])
    assert entry["closed_by"] == "peer"
    assert small.peak_rss() - before < 16 * MiB
    assert_served(client)
