"""
llmedge as a real proxy: the official OpenAI SDK through the real daemon to
a fake upstream on loopback speaking the OpenAI and Anthropic wire formats.
"""

import http.client
import json
import socket

import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream

CLIENT_KEY = "sk-client-proxy-test"
UPSTREAM_KEY = "sk-upstream-provider-key"
MESSAGES = [{"role": "user", "content": "hello upstream"}]
MODELS = {
    "gpt": [("up", "fake")],
    "gpt-short": [("up", "fake+chunks=3")],
    "claude": [("claude", "fake")],
    "claude-tools": [("claude", "fake")],
    "err500": [("up", "fake+status=500")],
    "err503-html": [("up", "fake+status=503+html")],
    "err429": [("up", "fake+status=429+retry-after=7")],
    "err401": [("up", "fake+status=401")],
    "err400": [("up", "fake+status=400")],
    "no-first-byte": [("impatient", "fake+slow-headers=30")],
    "unreachable": [("down", "fake")],
    "fallback": [("down", "fake"), ("up", "fake+chunks=2")],
    "fallback-500": [("up", "fake+status=502"), ("claude", "fake")],
    "reset": [("up", "fake+chunks=10+reset-after=3")],
    "garbage": [("up", "fake+garbage")],
    "slow-first": [("up", "fake+slow-first=2")],
    "long": [("up", "fake+chunks=2000+interval=0.01")],
    "huge": [("up", "fake+chunks=100000+size=10000")],
}


def config_text(base_url):
    providers = f"""
[providers.up]
kind = "openai"
base_url = "{base_url}/v1"
api_key_env = "UP_KEY"

[providers.impatient]
kind = "openai"
base_url = "{base_url}/v1"
first_byte_timeout = 1

[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
connect_timeout = 2

[providers.claude]
kind = "anthropic"
base_url = "{base_url}"
api_key_env = "UP_KEY"
"""
    models = "".join(
        f'\n[models."{name}"]\ntargets = ['
        + ", ".join(f'{{ provider = "{p}", model = "{m}" }}' for p, m in targets)
        + "]\n"
        for name, targets in MODELS.items()
    )
    return providers + models


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as running:
        yield running


@pytest.fixture(scope="module")
def daemon(upstream, tmp_path_factory):
    config = tmp_path_factory.mktemp("proxy") / "llmedge.toml"
    config.write_text(config_text(upstream.base_url))
    env = {"API_KEYS": CLIENT_KEY, "UP_KEY": UPSTREAM_KEY, "UPSTREAM_COOLDOWN_SECONDS": "0",
           "STREAM_KEEPALIVE_SECONDS": "0.5", "SERVER_TIMEOUT_SECONDS": "20",
           "RATE_LIMIT_BURST": "10000"}
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    with Daemon(args, env=env) as running:
        yield running


@pytest.fixture
def client(daemon, upstream):
    upstream.reset()
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def test_chat_completion_is_proxied(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert completion.usage.completion_tokens == 5
    (seen,) = upstream.log()
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["x_request_id"] == raw.headers["x-request-id"]
    assert seen["traceparent"].startswith("00-")
    assert raw.headers["x-ratelimit-remaining-requests"] != "4999"  # llmedge's own wins


def test_client_key_never_goes_upstream(client, upstream):
    client.chat.completions.create(model="gpt", messages=MESSAGES)
    assert CLIENT_KEY not in json.dumps(upstream.log())


def test_upstream_model_name_replaces_the_public_one(client, upstream):
    completion = client.chat.completions.create(model="gpt-short", messages=MESSAGES)
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2"
    assert upstream.log()[0]["body"]["model"] == "fake+chunks=3"


def test_stream_is_relayed_with_the_usage_chunk_held_back(client, upstream):
    chunks = list(client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "chunk0 chunk1 chunk2 chunk3 chunk4")
    assert all(c.choices for c in chunks)
    assert upstream.log()[0]["body"]["stream_options"] == {"include_usage": True}


def test_stream_with_usage_asked_by_the_client(client):
    chunks = list(client.chat.completions.create(
        model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_stream_keeps_finish_reason_null_on_the_wire(daemon, upstream):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    connection.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "gpt", "messages": MESSAGES, "stream": True}),
        {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"})
    body = connection.getresponse().read()
    assert b'"finish_reason":null' in body or b'"finish_reason": null' in body
    assert body.endswith(b"data: [DONE]\n\n")


def test_embeddings_and_legacy_completions_are_proxied(client):
    assert len(client.embeddings.create(model="gpt", input=["a", "b"]).data) == 2
    assert client.completions.create(model="gpt", prompt="x").choices[0].text


def test_anthropic_is_translated_both_ways(client, upstream):
    completion = client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "be brief"}, *MESSAGES])
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert completion.usage.prompt_tokens == 7
    (seen,) = upstream.log()
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["system"] == "be brief"
    assert seen["x_api_key"] == UPSTREAM_KEY
    assert seen["anthropic_version"]


def test_anthropic_stream_is_translated(client):
    chunks = list(client.chat.completions.create(
        model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert chunks[-1].usage.completion_tokens == 5


def test_anthropic_tool_calls_are_translated(client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"x": {"type": "integer"}}}}}]
    completion = client.chat.completions.create(
        model="claude-tools", messages=[{"role": "user", "content": "please use tool"}],
        tools=tools)
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"x": 1}
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    "model,exception,status,code",
    [
        ("err500", openai.APIStatusError, 502, "upstream_error"),
        ("err503-html", openai.InternalServerError, 503, "upstream_error"),
        ("err429", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("err401", openai.APIStatusError, 502, "upstream_auth_failed"),
        ("err400", openai.BadRequestError, 400, None),
        ("unreachable", openai.APIStatusError, 502, "upstream_unreachable"),
        ("no-first-byte", openai.APIStatusError, 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_map_to_clear_errors(client, model, exception, status, code):
    with pytest.raises(exception) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == status
    if code:
        assert caught.value.code == code
    text = caught.value.response.text
    assert "<html" not in text and "Traceback" not in text and "twisted" not in text.lower()


def test_upstream_429_keeps_its_retry_after(client):
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="err429", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "7"


def test_fallback_to_the_next_target(client, daemon):
    raw = client.chat.completions.with_raw_response.create(model="fallback", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "chunk0 chunk1"
    request_id = raw.headers["x-request-id"]
    event = json.loads(daemon.wait_for_line(
        lambda line: request_id in line and '"llmedge.access"' in line))
    assert [a["provider"] for a in event["attempts"]] == ["down", "up"]
    assert event["attempts"][0]["error"] == "upstream_unreachable"


def test_fallback_after_a_5xx_crosses_providers(client):
    completion = client.chat.completions.create(model="fallback-500", messages=MESSAGES)
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"


def test_reset_mid_stream_ends_with_an_error_event(client):
    stream = client.chat.completions.create(model="reset", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "ended the stream" in str(caught.value) or "upstream" in str(caught.value).lower()


def test_garbage_from_upstream_never_reaches_the_client(client):
    stream = client.chat.completions.create(model="garbage", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "malformed" in str(caught.value)


def test_keep_alive_comments_while_waiting_for_the_first_token(daemon):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    connection.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "slow-first", "messages": MESSAGES, "stream": True}),
        {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"})
    body = connection.getresponse().read()
    assert body.startswith(b": keep-alive\n\n")
    assert body.endswith(b"data: [DONE]\n\n")


def raw_stream(daemon, model):
    sock = socket.create_connection(daemon.host_port, timeout=10)
    body = json.dumps({"model": model, "messages": MESSAGES, "stream": True}).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    return sock


def test_client_disconnect_closes_the_upstream_within_a_second(daemon, upstream):
    upstream.reset()
    sock = raw_stream(daemon, "long")
    n = upstream.log()[-1]["n"]
    sock.close()
    entry = upstream.wait_for(n, "disconnected_at", timeout=10)
    assert entry["disconnected_at"] - entry["received_at"] < 1.0 + 1.0
    assert entry["chunks_sent"] < 2000


def test_slow_reader_does_not_make_llmedge_buffer_the_stream(daemon, upstream):
    upstream.reset()
    sock = raw_stream(daemon, "huge")  # 100,000 events of 10 kB: 1 GB if buffered
    n = upstream.log()[-1]["n"]
    sent = []
    for _ in range(200):  # bounded: until the upstream stops being read
        sent.append(upstream.log()[-1]["chunks_sent"])
        if len(sent) > 10 and sent[-1] == sent[-10]:
            break
    assert sent[-1] == sent[-10], "the upstream was never paused"
    assert sent[-1] * 10_000 < 64 * 1024 * 1024  # a few MB of socket buffers, not 1 GB
    status = open(f"/proc/{daemon.process.pid}/status").read()
    rss_kib = int(status.split("VmRSS:")[1].split()[0])
    assert rss_kib < 300 * 1024
    sock.close()
    upstream.wait_for(n, "disconnected_at", timeout=10)
