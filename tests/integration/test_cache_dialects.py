# -*- test-case-name: tests.integration.test_cache_dialects -*-
"""
The response cache behind the other two dialects, through the real daemon:
a Responses hit re-made with the asking request's metadata, translated and
passed through; Anthropic Messages hits, whole and streamed; and a stream
of either kept for a later whole request. Fixtures and helpers are
test_cache's (a daemon of this module's own).
"""

from __future__ import annotations

import pytest

from tests.integration.test_cache import FAKE_TEXT, fresh, module_fixtures, reached, said

upstream, daemon, client, claude = module_fixtures()


def responses_text(events) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


@pytest.mark.parametrize("model", ["chat", "native"])
def test_a_responses_hit_echoes_the_asking_request(upstream, client, model):
    prompt = fresh()
    ask = client.responses.with_raw_response.create
    first = ask(model=model, input=prompt, metadata={"run": "first"})
    second = ask(model=model, input=prompt, metadata={"run": "second"})
    assert first.headers["x-llmedge-cache"] == "miss"
    assert second.headers["x-llmedge-cache"] == "hit"
    missed, hit = first.parse(), second.parse()
    assert hit.output_text == missed.output_text and FAKE_TEXT in hit.output_text
    assert hit.metadata == {"run": "second"}
    assert (hit.usage.input_tokens, hit.usage.output_tokens) == (
        missed.usage.input_tokens, missed.usage.output_tokens)
    third = ask(model=model, input=prompt, metadata={"run": "third"}, stream=True)
    assert third.headers["x-llmedge-cache"] == "hit"
    events = list(third.parse())
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert responses_text(events) == missed.output_text
    assert events[-1].response.metadata == {"run": "third"}
    assert len(reached(upstream, prompt)) == 1


@pytest.mark.parametrize("model", ["chat", "native"])
def test_a_responses_stream_is_kept_for_a_whole_request(upstream, client, model):
    prompt = fresh()
    first = client.responses.with_raw_response.create(model=model, input=prompt, stream=True)
    assert first.headers["x-llmedge-cache"] == "miss"
    text = responses_text(list(first.parse()))
    second = client.responses.with_raw_response.create(model=model, input=prompt)
    assert second.headers["x-llmedge-cache"] == "hit"
    assert second.parse().output_text == text and FAKE_TEXT in text
    assert len(reached(upstream, prompt)) == 1


def messages_text(events) -> str:
    return "".join(e.delta.text for e in events
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")


def test_messages_hit_after_miss_whole_and_streamed(upstream, claude):
    prompt = fresh()
    ask = claude.messages.with_raw_response.create
    first = ask(model="claude", max_tokens=50, messages=said(prompt),
                metadata={"user_id": "first"})
    second = ask(model="claude", max_tokens=50, messages=said(prompt),
                 metadata={"user_id": "second"})
    assert first.headers["x-llmedge-cache"] == "miss"
    assert second.headers["x-llmedge-cache"] == "hit"
    missed, hit = first.parse(), second.parse()
    assert hit.content[0].text == missed.content[0].text == FAKE_TEXT
    assert (hit.usage.input_tokens, hit.usage.output_tokens) == (
        missed.usage.input_tokens, missed.usage.output_tokens)
    third = ask(model="claude", max_tokens=50, messages=said(prompt), stream=True)
    assert third.headers["x-llmedge-cache"] == "hit"
    events = list(third.parse())
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    assert messages_text(events) == FAKE_TEXT
    (delta,) = [e for e in events if e.type == "message_delta"]
    assert delta.delta.stop_reason == missed.stop_reason
    assert delta.usage.output_tokens == missed.usage.output_tokens
    assert len(reached(upstream, prompt)) == 1


def test_a_messages_stream_is_kept_for_a_whole_request(upstream, claude):
    prompt = fresh()
    first = claude.messages.with_raw_response.create(
        model="claude", max_tokens=50, messages=said(prompt), stream=True)
    assert first.headers["x-llmedge-cache"] == "miss"
    text = messages_text(list(first.parse()))
    second = claude.messages.with_raw_response.create(
        model="claude", max_tokens=50, messages=said(prompt))
    assert second.headers["x-llmedge-cache"] == "hit"
    whole = second.parse()
    assert whole.content[0].text == text == FAKE_TEXT
    assert whole.stop_reason == "end_turn"
    assert len(reached(upstream, prompt)) == 1
