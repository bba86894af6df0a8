"""
The response cache in the request path (llmedge.web.cached), through the
whole service on a fake reactor: the mock provider answers, its random ids
tell a stored answer from a fresh one, and the clock drives expiry and the
single flight's wait.
"""

import json

import pytest
from twisted.web.http_headers import Headers

from llmedge.web.cached import _cacheable, directives
from llmedge.providers.base import CHAT, COMPLETIONS, Call
from tests.unit.support import Harness

CACHED = {"CACHE_ENABLED": "true", "CACHE_TTL_SECONDS": "60"}


def chat(text, **fields):
    return {"model": "mock", "messages": [{"role": "user", "content": text}], **fields}


@pytest.fixture
def edge():
    return Harness(CACHED)


def ask(edge, body, path="/v1/chat/completions", **headers):
    return edge.request("POST", path, body=body, headers=headers or None)


class FakeRequest:
    def __init__(self, **headers):
        self.requestHeaders = Headers({k.encode(): [v.encode()] for k, v in headers.items()})


@pytest.mark.parametrize("value,expected", [
    (None, (True, True)),
    ("no-cache", (False, True)),
    ("No-Cache", (False, True)),
    ("max-age=0, no-cache", (False, True)),
    ("no-store", (False, False)),
    ("no-cache, no-store", (False, False)),
    ("max-age=60", (True, True)),
])
def test_cache_control_decides_reading_and_keeping(value, expected):
    request = FakeRequest(**({"Cache-Control": value} if value else {}))
    assert directives(request) == expected


@pytest.mark.parametrize("endpoint,body,cacheable", [
    (CHAT, chat("a"), True),
    (CHAT, chat("a", n=1), True),
    (CHAT, chat("a", n=2), False),
    (CHAT, chat("a", logprobs=True), False),
    (CHAT, chat("a", top_logprobs=2), False),
    (COMPLETIONS, {"model": "m", "prompt": "a"}, True),
    (COMPLETIONS, {"model": "m", "prompt": "a", "stream": True}, False),
])
def test_what_can_be_given_again(endpoint, body, cacheable):
    assert _cacheable(Call(endpoint, body)) is cacheable


def test_cache_off_every_v1_answer_says_bypass():
    edge = Harness()
    response = ask(edge, chat("hello"))
    assert response.status == 200
    assert response.header("x-llmedge-cache") == "bypass"
    assert edge.request("GET", "/v1/models").header("x-llmedge-cache") == "bypass"
    assert edge.request("GET", "/health").header("x-llmedge-cache") is None


def test_an_error_under_v1_says_bypass(edge):
    response = ask(edge, {"model": "nope", "messages": []})
    assert response.status in (400, 404)
    assert response.header("x-llmedge-cache") == "bypass"


def test_identical_request_is_a_hit_with_the_same_answer(edge):
    first = ask(edge, chat("same question"))
    second = ask(edge, chat("same question"))
    assert first.header("x-llmedge-cache") == "miss"
    assert second.header("x-llmedge-cache") == "hit"
    assert second.body == first.body
    assert second.header("content-type") == "application/json"


def test_key_order_and_user_do_not_matter(edge):
    first = ask(edge, {"messages": [{"content": "order", "role": "user"}], "model": "mock"})
    second = ask(edge, {**chat("order"), "user": "someone"})
    assert second.header("x-llmedge-cache") == "hit"
    assert second.json()["id"] == first.json()["id"]


def test_a_different_body_is_a_miss(edge):
    first = ask(edge, chat("one"))
    second = ask(edge, chat("one", temperature=0.5))
    assert second.header("x-llmedge-cache") == "miss"
    assert second.json()["id"] != first.json()["id"]


def test_a_whole_answer_is_replayed_as_a_chat_stream(edge):
    first = ask(edge, chat("stream me")).json()
    replay = ask(edge, chat("stream me", stream=True, stream_options={"include_usage": True}))
    assert replay.header("x-llmedge-cache") == "hit"
    assert replay.header("content-type").startswith("text/event-stream")
    events = replay.events()
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["choices"])
    assert text == first["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == first["usage"]["total_tokens"]


def test_a_completed_stream_answers_a_later_whole_request(edge):
    streamed = ask(edge, chat("stream first", stream=True))
    assert streamed.header("x-llmedge-cache") == "miss"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in streamed.events()[:-1])
    whole = ask(edge, chat("stream first"))
    assert whole.header("x-llmedge-cache") == "hit"
    assert whole.json()["choices"][0]["message"]["content"] == text
    assert whole.json()["object"] == "chat.completion"


def test_no_cache_asks_the_provider_and_keeps_the_fresh_answer(edge):
    first = ask(edge, chat("fresh"))
    fresh = ask(edge, chat("fresh"), **{"Cache-Control": "no-cache"})
    assert fresh.header("x-llmedge-cache") == "miss"
    assert fresh.json()["id"] != first.json()["id"]
    again = ask(edge, chat("fresh"))
    assert again.json()["id"] == fresh.json()["id"]


def test_no_store_neither_reads_nor_keeps(edge):
    kept = ask(edge, chat("private"))
    private = ask(edge, chat("private"), **{"Cache-Control": "no-store"})
    assert private.header("x-llmedge-cache") == "bypass"
    assert private.json()["id"] != kept.json()["id"]
    assert ask(edge, chat("private")).json()["id"] == kept.json()["id"]


def test_an_entry_expires_at_its_ttl(edge):
    first = ask(edge, chat("short lived"))
    edge.reactor.advance(59)
    assert ask(edge, chat("short lived")).header("x-llmedge-cache") == "hit"
    edge.reactor.advance(1)
    late = ask(edge, chat("short lived"))
    assert late.header("x-llmedge-cache") == "miss"
    assert late.json()["id"] != first.json()["id"]


def test_an_error_is_not_kept(edge):
    # The mock's own bound on a prompt answers 400 after the cache step:
    # not a 200, so never stored.
    body = chat("x" * (1 << 18 + 1))
    first = ask(edge, body)
    assert first.status == 400
    assert first.header("x-llmedge-cache") == "miss"
    assert ask(edge, body).header("x-llmedge-cache") == "miss"


def test_embeddings_are_cached(edge):
    body = {"model": "mock", "input": "embed me"}
    first = ask(edge, body, "/v1/embeddings")
    second = ask(edge, body, "/v1/embeddings")
    assert (first.header("x-llmedge-cache"), second.header("x-llmedge-cache")) == ("miss", "hit")
    assert second.body == first.body


def test_a_legacy_completion_stream_bypasses(edge):
    body = {"model": "mock", "prompt": "p", "stream": True}
    assert ask(edge, body, "/v1/completions").header("x-llmedge-cache") == "bypass"


def test_responses_hit_echoes_the_asking_requests_metadata(edge):
    body = {"model": "mock", "input": "tag me"}
    first = ask(edge, {**body, "metadata": {"run": "1"}}, "/v1/responses")
    second = ask(edge, {**body, "metadata": {"run": "2"}}, "/v1/responses")
    assert second.header("x-llmedge-cache") == "hit"
    assert second.json()["metadata"] == {"run": "2"}
    assert second.json()["output"] == first.json()["output"]


def test_messages_stream_is_replayed_from_a_whole_answer(edge):
    body = {"model": "mock", "max_tokens": 50,
            "messages": [{"role": "user", "content": "anthropic"}]}
    first = ask(edge, body, "/v1/messages").json()
    replay = edge.request("POST", "/v1/messages", body={**body, "stream": True})
    assert replay.header("x-llmedge-cache") == "hit"
    text = "".join(json.loads(e)["delta"].get("text", "") for e in replay.events()
                   if json.loads(e)["type"] == "content_block_delta")
    assert text == first["content"][0]["text"]


def test_count_tokens_bypasses(edge):
    body = {"model": "mock", "messages": [{"role": "user", "content": "count"}]}
    response = ask(edge, body, "/v1/messages/count_tokens")
    assert response.status == 200
    assert response.header("x-llmedge-cache") == "bypass"


def keyed(scope):
    return Harness({**CACHED, "AUTH_ENABLED": "true", "API_KEYS": "key-one,key-two",
                    "CACHE_SCOPE": scope})


def test_scope_key_keeps_each_keys_answers_apart():
    edge = keyed("key")
    first = ask(edge, chat("tenant"), Authorization="Bearer key-one")
    other = ask(edge, chat("tenant"), Authorization="Bearer key-two")
    assert other.header("x-llmedge-cache") == "miss"
    assert other.json()["id"] != first.json()["id"]
    assert ask(edge, chat("tenant"), Authorization="Bearer key-one").json()["id"] \
        == first.json()["id"]


def test_scope_global_shares_answers_across_keys():
    edge = keyed("global")
    first = ask(edge, chat("shared"), Authorization="Bearer key-one")
    other = ask(edge, chat("shared"), Authorization="Bearer key-two")
    assert other.header("x-llmedge-cache") == "hit"
    assert other.json()["id"] == first.json()["id"]


def slow(tmp_path, cache=True, extra=""):
    path = tmp_path / "llmedge.toml"
    path.write_text(f"""
[providers.slow]
kind = "mock"
latency = 2
stream_interval = 0.1

[models."slow-model"]
targets = [{{ provider = "slow", model = "m" }}]
cache = {str(cache).lower()}
{extra}
""")
    return Harness({**CACHED, "CACHE_WAIT_SECONDS": "10"}, str(path))


def send_all(edge, bodies):
    connections = []
    for body in bodies:
        connection = edge.connect()
        connection.send(_raw(body))
        connections.append(connection)
    for _ in range(200):
        edge.reactor.advance(0.05)
    return [c.response() for c in connections]


def _raw(body):
    from tests.unit.support import raw_request
    return raw_request("POST", "/v1/chat/completions", body, None)


def test_identical_requests_in_flight_wait_for_the_first(tmp_path):
    edge = slow(tmp_path)
    responses = send_all(edge, [chat("herd", model="slow-model")] * 10)
    assert [r.status for r in responses] == [200] * 10
    results = sorted(r.header("x-llmedge-cache") for r in responses)
    assert results == ["hit"] * 9 + ["miss"]
    assert len({r.json()["id"] for r in responses}) == 1


def test_followers_of_a_stream_get_the_stream_it_kept(tmp_path):
    edge = slow(tmp_path)
    body = chat("herd stream", model="slow-model", stream=True)
    responses = send_all(edge, [body] * 3)
    assert sorted(r.header("x-llmedge-cache") for r in responses) == ["hit", "hit", "miss"]
    assert all(r.events()[-1] == b"[DONE]" for r in responses)
    told = set()
    for response in responses:
        chunks = [json.loads(e) for e in response.events()[:-1]]
        told.add((chunks[0]["id"], "".join(c["choices"][0]["delta"].get("content") or ""
                                           for c in chunks)))
    assert len(told) == 1
    assert next(iter(told))[1] == "You said: herd stream"


def test_a_model_kept_out_of_the_cache_bypasses(tmp_path):
    edge = slow(tmp_path, cache=False)
    responses = [ask(edge, chat("uncached", model="slow-model")) for _ in range(2)]
    assert [r.header("x-llmedge-cache") for r in responses] == ["bypass", "bypass"]
    assert responses[0].json()["id"] != responses[1].json()["id"]


def test_a_follower_goes_upstream_when_the_first_is_cut_by_the_deadline(tmp_path):
    path = tmp_path / "llmedge.toml"
    path.write_text("""
[providers.slow]
kind = "mock"
latency = 5

[models."slow-model"]
targets = [{ provider = "slow", model = "m" }]
""")
    edge = Harness({**CACHED, "SERVER_TIMEOUT_SECONDS": "3"}, str(path))
    first = edge.connect()
    first.send(_raw(chat("cut", model="slow-model")))
    edge.reactor.advance(1)
    second = edge.connect()
    second.send(_raw(chat("cut", model="slow-model")))
    for _ in range(200):
        edge.reactor.advance(0.05)
    assert first.response().status == 504
    # The follower woke when the first was cut, went upstream itself, and
    # its own deadline (3 s from its start) cut it too: never a stale hit.
    assert second.response().status == 504
    assert second.response().header("x-llmedge-cache") == "miss"


def test_metrics_count_results_and_show_what_is_held(edge):
    ask(edge, chat("counted"))
    ask(edge, chat("counted"))
    ask(edge, chat("counted"), **{"Cache-Control": "no-store"})
    text = edge.request("GET", "/metrics").body.decode()
    for result in ("hit", "miss", "bypass"):
        assert f'llmedge_cache_requests_total{{result="{result}"}} 1.0' in text
    held = [line for line in text.splitlines() if line.startswith("llmedge_cache_bytes ")]
    assert float(held[0].split()[1]) > 0
    assert "llmedge_cache_entries 1.0" in text
