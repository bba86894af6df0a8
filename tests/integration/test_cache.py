# -*- test-case-name: tests.integration.test_cache -*-
"""
The response cache (issue 16) through the real daemon, memory backend:
what a client sees (C{x-llmedge-cache}, the same answer and usage again, a
whole answer replayed as a stream and a stream given back whole), what the
provider sees (the fake upstream's log: how many requests reached it) and
what the operator sees (C{/metrics}, the access event, a bounded memory).

Real clients only: the official OpenAI and Anthropic SDKs, and httpx for
raw bytes. Each test asks with a prompt of its own (L{fresh}), so tests
sharing a daemon never meet each other's entries, and counts the requests
that reached the fake by that prompt (L{reached}). Nothing waits on time:
expiry is driven on a clock through the whole service in
tests.unit.test_cached (and Redis's own expiry is checked as the C{PX}
llmedge gives each entry, in test_cache_redis_real).
"""

from __future__ import annotations

import concurrent.futures
import json
import uuid

import anthropic
import httpx2 as httpx
import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream
from tests.integration.conftest import wait_in_flight

KEY_A = "sk-cache-tenant-a"
KEY_B = "sk-cache-tenant-b"
#: A key whose token budget a few misses spend.
FRUGAL_KEY = "sk-cache-frugal"
FRUGAL_TPM = 100
FAKE_TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4"
#: Seconds the slow model's upstream waits before answering: long enough
#: for ten local requests to be in flight beside it.
SLOW = 3
WAIT = 30.0
MiB = 1024 * 1024

#: public name -> (provider, upstream model, extra lines of its table)
MODELS = {
    "chat": ("up", "fake", ""),
    "native": ("native", "fake", ""),
    "claude": ("claude", "fake", ""),
    "slow": ("up", f"fake+slow-headers={SLOW}", ""),
    "flaky": ("up", "fake+fail-first=1+status=500", ""),
    "uncached": ("up", "fake", "cache = false\n"),
}


def config_text(base_url: str) -> str:
    text = f"""
[providers.up]
kind = "openai"
base_url = "{base_url}/v1"

[providers.native]
kind = "openai"
base_url = "{base_url}/v1"
responses = true

[providers.claude]
kind = "anthropic"
base_url = "{base_url}"

[[auth.keys]]
name = "a"
key = "{KEY_A}"

[[auth.keys]]
name = "b"
key = "{KEY_B}"

[[auth.keys]]
name = "frugal"
key = "{FRUGAL_KEY}"
tokens_per_minute = {FRUGAL_TPM}
"""
    for name, (provider, model, extra) in MODELS.items():
        text += (f'\n[models."{name}"]\n{extra}'
                 f'targets = [{{ provider = "{provider}", model = "{model}" }}]\n')
    return text


ENV = {
    "CACHE_ENABLED": "true", "CACHE_BACKEND": "memory", "RATE_LIMIT_BURST": "100000",
    "SERVER_TIMEOUT_SECONDS": "30", "STREAM_KEEPALIVE_SECONDS": "0",
    "HEALTH_PROBE_INTERVAL_SECONDS": "0", "UPSTREAM_COOLDOWN_SECONDS": "0",
}


def start(upstream, tmp_path_factory, **settings: str) -> Daemon:
    config = tmp_path_factory.mktemp("cache") / "llmedge.toml"
    config.write_text(config_text(upstream.base_url))
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    return Daemon(args, env={**ENV, **settings})


@pytest.fixture(scope="module")
def global_daemon(upstream, tmp_path_factory):
    """
    The same daemon with every key sharing one cache.
    """
    with start(upstream, tmp_path_factory, CACHE_SCOPE="global") as running:
        yield running


def sdk(daemon, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0,
                         timeout=WAIT)


def module_fixtures():
    """
    The fixtures of a module of cache tests (this one and its siblings):
    its own fake upstream and daemon, and the two SDKs' clients of it.
    """

    @pytest.fixture(scope="module")
    def upstream():
        with FakeUpstream() as running:
            yield running

    @pytest.fixture(scope="module")
    def daemon(upstream, tmp_path_factory):
        with start(upstream, tmp_path_factory) as running:
            yield running

    @pytest.fixture
    def client(daemon):
        return sdk(daemon)

    @pytest.fixture
    def claude(daemon):
        return anthropic.Anthropic(base_url=daemon.base_url, api_key=KEY_A, max_retries=0,
                                   timeout=WAIT)

    return upstream, daemon, client, claude


upstream, daemon, client, claude = module_fixtures()


def fresh() -> str:
    """
    A prompt no other test asks: its answer is not in the cache yet.
    """
    return "cache-test-" + uuid.uuid4().hex


def said(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def reached(upstream, prompt: str) -> list[dict]:
    """
    The requests that reached the fake upstream asking C{prompt}.
    """
    return [entry for entry in upstream.log() if prompt in json.dumps(entry["body"])]


def chat(client, model: str, prompt: str, **fields):
    """
    One chat completion: C{x-llmedge-cache} and the parsed answer.
    """
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=said(prompt), **fields)
    return raw.headers["x-llmedge-cache"], raw.parse()


def streamed(client, model: str, prompt: str, **fields):
    """
    One streamed chat completion asking for usage: C{x-llmedge-cache} and
    every chunk, as the SDK parsed them.
    """
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=said(prompt), stream=True,
        stream_options={"include_usage": True}, **fields)
    return raw.headers["x-llmedge-cache"], list(raw.parse())


def text_of(chunks) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def counts(usage) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


def post(daemon, body: bytes, key: str = KEY_A) -> httpx.Response:
    return httpx.post(daemon.base_url + "/v1/chat/completions", content=body, timeout=WAIT,
                      headers={"Authorization": f"Bearer {key}",
                               "Content-Type": "application/json"})


# -- Hits and misses ---------------------------------------------------------


def test_a_repeated_request_is_answered_from_the_cache_after_one_upstream_call(
        upstream, client):
    prompt = fresh()
    first, missed = chat(client, "chat", prompt)
    second, hit = chat(client, "chat", prompt)
    assert (first, second) == ("miss", "hit")
    assert hit.choices[0].message.content == missed.choices[0].message.content == FAKE_TEXT
    assert hit.usage == missed.usage
    assert hit.id == missed.id
    assert len(reached(upstream, prompt)) == 1


def test_key_order_and_whitespace_of_the_body_do_not_change_the_key(upstream, daemon):
    prompt = fresh()
    compact = json.dumps({"model": "chat", "temperature": 0.5, "messages": said(prompt)},
                         separators=(",", ":")).encode()
    spread = json.dumps({"messages": [{"content": prompt, "role": "user"}],
                         "temperature": 0.5, "model": "chat"}, indent=4).encode()
    first, second = post(daemon, compact), post(daemon, spread)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-llmedge-cache"] == "miss"
    assert second.headers["x-llmedge-cache"] == "hit"
    assert second.content == first.content
    assert len(reached(upstream, prompt)) == 1


def test_under_scope_key_another_key_does_not_get_a_key_s_answer(upstream, daemon):
    prompt = fresh()
    assert chat(sdk(daemon, KEY_A), "chat", prompt)[0] == "miss"
    assert chat(sdk(daemon, KEY_B), "chat", prompt)[0] == "miss"
    assert chat(sdk(daemon, KEY_B), "chat", prompt)[0] == "hit"
    assert len(reached(upstream, prompt)) == 2


def test_under_scope_global_every_key_gets_the_answer(upstream, global_daemon):
    prompt = fresh()
    assert chat(sdk(global_daemon, KEY_A), "chat", prompt)[0] == "miss"
    assert chat(sdk(global_daemon, KEY_B), "chat", prompt)[0] == "hit"
    assert len(reached(upstream, prompt)) == 1


def test_a_whole_answer_is_replayed_as_a_stream(upstream, client, daemon):
    prompt = fresh()
    _, whole = chat(client, "chat", prompt)
    result, chunks = streamed(client, "chat", prompt)
    assert result == "hit"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks
            if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1]
    assert usage.choices == [] and counts(usage.usage) == counts(whole.usage)
    # On the wire: an event stream that ends as OpenAI's does.
    body = json.dumps({"model": "chat", "messages": said(prompt), "stream": True}).encode()
    raw = post(daemon, body)
    assert raw.headers["x-llmedge-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.content.rstrip().endswith(b"data: [DONE]")
    assert len(reached(upstream, prompt)) == 1


def test_a_stream_is_kept_for_a_whole_request(upstream, client):
    prompt = fresh()
    result, chunks = streamed(client, "chat", prompt)
    assert result == "miss"
    result, whole = chat(client, "chat", prompt)
    assert result == "hit"
    assert whole.choices[0].message.content == text_of(chunks) == FAKE_TEXT
    assert whole.choices[0].finish_reason == "stop"
    assert counts(whole.usage) == counts(chunks[-1].usage)
    assert len(reached(upstream, prompt)) == 1


# -- Cache-Control -----------------------------------------------------------


def test_no_cache_asks_upstream_and_keeps_the_fresh_answer(upstream, client):
    prompt = fresh()
    _, first = chat(client, "chat", prompt)
    result, renewed = chat(client, "chat", prompt, extra_headers={"Cache-Control": "no-cache"})
    assert result == "miss"
    assert renewed.id != first.id  # the fake numbers its answers
    result, hit = chat(client, "chat", prompt)
    assert result == "hit" and hit.id == renewed.id
    assert len(reached(upstream, prompt)) == 2


def test_no_store_bypasses_the_cache_both_ways(upstream, client):
    prompt = fresh()
    no_store = {"Cache-Control": "no-store"}
    assert chat(client, "chat", prompt, extra_headers=no_store)[0] == "bypass"
    assert len(reached(upstream, prompt)) == 1
    assert chat(client, "chat", prompt)[0] == "miss"  # nothing was stored
    assert chat(client, "chat", prompt)[0] == "hit"
    assert chat(client, "chat", prompt, extra_headers=no_store)[0] == "bypass"  # nor read
    assert len(reached(upstream, prompt)) == 3


# -- What is never kept, or kept no longer -----------------------------------


def test_an_upstream_error_is_never_kept(upstream, client):
    prompt = fresh()
    with pytest.raises(openai.APIStatusError) as caught:
        chat(client, "flaky", prompt)
    assert caught.value.status_code >= 500
    assert caught.value.response.headers["x-llmedge-cache"] == "miss"
    result, answer = chat(client, "flaky", prompt)  # the fake answers from now on
    assert result == "miss" and answer.choices[0].message.content == FAKE_TEXT
    assert len(reached(upstream, prompt)) == 2
    assert chat(client, "flaky", prompt)[0] == "hit"


def test_a_model_with_cache_false_is_bypassed_and_always_asked(upstream, client):
    prompt = fresh()
    results = [chat(client, "uncached", prompt)[0] for _ in range(3)]
    assert results == ["bypass"] * 3
    assert len(reached(upstream, prompt)) == 3


# -- Single flight -------------------------------------------------------------


def test_identical_requests_in_flight_together_reach_the_upstream_once(upstream, daemon):
    client = sdk(daemon)
    prompt = fresh()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        asked = [pool.submit(chat, client, "slow", prompt) for _ in range(10)]
        # All ten are in the daemon at once, while the first waits on the
        # slow upstream: the nine others came while it was in flight.
        wait_in_flight(daemon.host_port, 10)
        answers = [future.result(timeout=WAIT) for future in asked]
    results = sorted(result for result, _ in answers)
    assert results == ["hit"] * 9 + ["miss"]
    assert {answer.choices[0].message.content for _, answer in answers} == {FAKE_TEXT}
    assert len(reached(upstream, prompt)) == 1


# -- The other cached routes -----------------------------------------------------


def test_embeddings_are_cached(upstream, client):
    prompt = fresh()
    inputs = [prompt, prompt + " again"]
    first = client.embeddings.with_raw_response.create(model="chat", input=inputs)
    second = client.embeddings.with_raw_response.create(model="chat", input=inputs)
    assert first.headers["x-llmedge-cache"] == "miss"
    assert second.headers["x-llmedge-cache"] == "hit"
    missed, hit = first.parse(), second.parse()
    assert [d.embedding for d in hit.data] == [d.embedding for d in missed.data]
    assert hit.usage == missed.usage
    (entry,) = reached(upstream, prompt)
    assert entry["path"] == "/v1/embeddings"


def test_legacy_completions_are_cached_but_their_streams_bypass(upstream, client):
    prompt = fresh()
    first = client.completions.with_raw_response.create(model="chat", prompt=prompt)
    second = client.completions.with_raw_response.create(model="chat", prompt=prompt)
    assert first.headers["x-llmedge-cache"] == "miss"
    assert second.headers["x-llmedge-cache"] == "hit"
    assert second.parse().choices[0].text == first.parse().choices[0].text == FAKE_TEXT
    stream = client.completions.with_raw_response.create(model="chat", prompt=prompt,
                                                         stream=True)
    assert stream.headers["x-llmedge-cache"] == "bypass"
    assert "".join(c.choices[0].text for c in stream.parse() if c.choices) == FAKE_TEXT
    assert len(reached(upstream, prompt)) == 2


def test_chat_with_several_choices_bypasses(upstream, client):
    prompt = fresh()
    assert [chat(client, "chat", prompt, n=2)[0] for _ in range(2)] == ["bypass"] * 2
    assert len(reached(upstream, prompt)) == 2


def test_counting_tokens_bypasses(claude):
    raw = claude.messages.with_raw_response.count_tokens(model="claude",
                                                        messages=said(fresh()))
    assert raw.headers["x-llmedge-cache"] == "bypass"
    assert raw.parse().input_tokens > 0


def test_every_v1_answer_says_what_the_cache_did(daemon):
    auth = {"Authorization": f"Bearer {KEY_A}"}
    models = httpx.get(daemon.base_url + "/v1/models", headers=auth, timeout=WAIT)
    invalid = post(daemon, b'{"model": "chat"}')
    unknown = post(daemon, b'{"model": "chat", "messages": []}', key="sk-nobody")
    assert (models.status_code, invalid.status_code, unknown.status_code) == (200, 400, 401)
    assert [r.headers.get("x-llmedge-cache") for r in (models, invalid, unknown)] == \
        ["bypass"] * 3
