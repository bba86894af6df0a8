"""
The back door: the real daemon in front of a hostile upstream
(L{llmedge.testing.HostileUpstream}), each case seen by the official
OpenAI SDK — an endless body, an endless event, a head that never ends, a
garbage status line, unsafe header values, a stream answered as JSON or
HTML, usage where real gateways put it — with the status and error code the
SDK raises, the upstream connection dropped where a bound was crossed, the
daemon's memory bounded, and the next request served.
"""

from __future__ import annotations

import json
import uuid

import openai
import pytest

from llmedge.testing import Daemon
from llmedge.testing.hostile_wire import chat_chunk, chat_completion, dumps, openai_usage, \
    response, sse
from tests.integration.conftest import API_KEY, metric

MiB = 1024 * 1024
#: upstream.max_response_bytes here: small, so crossing it is cheap.
RESPONSE_BOUND = 4 * MiB
#: upstream.max_event_bytes here.
EVENT_BOUND = 256 * 1024
TPM_KEY = "sk-back-door-tpm"
MESSAGES = [{"role": "user", "content": "hello"}]
MODELS = {
    "good": ("h", "good"),
    "script": ("h", "script"),
    "claude-script": ("c", "script"),
    "endless-json": ("h", "hostile+endless-json"),
    "endless-chunked": ("h", "hostile+endless-chunked"),
    "huge-length": ("h", "hostile+huge-length"),
    "endless-error": ("h", "hostile+endless-error+status=500"),
    "endless-event": ("h", "hostile+endless-event+block=4096"),
    "endless-line": ("h", "hostile+endless-line"),
    "endless-events": ("h", "hostile+endless-events"),
    "wide-events": ("h", "hostile+endless-events+delta=4096+block=65536"),
    "endless-head": ("h", "hostile+endless-head"),
    "claude-endless": ("c", "hostile+endless-json"),
}


def config_text(base_url: str) -> str:
    lines = [
        "[providers.h]", 'kind = "openai"', f'base_url = "{base_url}/v1"', "",
        "[providers.c]", 'kind = "anthropic"', f'base_url = "{base_url}"', "",
        "[[auth.keys]]", 'name = "main"', f'key = "{API_KEY}"', "",
        "[[auth.keys]]", 'name = "tpm"', f'key = "{TPM_KEY}"', "tokens_per_minute = 10000", "",
    ]
    for name, (provider, model) in MODELS.items():
        lines += [f'[models."{name}"]',
                  f'targets = [ {{ provider = "{provider}", model = "{model}" }} ]', ""]
    lines += ['[models."fallback"]',
              'targets = [ { provider = "h", model = "script" }, { provider = "h", model = "good" } ]']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def daemon(hostile, tmp_path_factory):
    yield from running_daemon(hostile, tmp_path_factory)


def running_daemon(hostile, tmp_path_factory, **settings: str):
    """
    The daemon in front of C{hostile}, for this module and its siblings;
    C{settings} (environment names) override this module's.
    """
    config = tmp_path_factory.mktemp("back-door") / "llmedge.toml"
    config.write_text(config_text(hostile.base_url))
    env = {
        "RATE_LIMIT_BURST": "100000", "SERVER_TIMEOUT_SECONDS": "20",
        "UPSTREAM_MAX_RESPONSE_BYTES": str(RESPONSE_BOUND),
        "UPSTREAM_MAX_EVENT_BYTES": str(EVENT_BOUND),
        "HEALTH_PROBE_INTERVAL_SECONDS": "0", "STREAM_KEEPALIVE_SECONDS": "0",
        # Every failure here is on purpose: no provider is skipped for one.
        "UPSTREAM_COOLDOWN_SECONDS": "0",
    }
    env.update(settings)
    with Daemon(args=["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                env=env) as running:
        yield running


@pytest.fixture
def client(daemon):
    return sdk_client(daemon)


def sdk_client(daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=API_KEY, max_retries=0,
                         timeout=30)


def request_id() -> str:
    return "req-" + uuid.uuid4().hex


def scripted(hostile, *pieces: bytes, then: str = "close") -> dict:
    """
    Script the upstream's answer for one request; its C{x-request-id}
    header, to pass as C{extra_headers}.
    """
    rid = request_id()
    hostile.script(rid, list(pieces), then=then)
    return {"x-request-id": rid}


def last_entry(hostile, model: str) -> dict:
    return [entry for entry in hostile.log() if entry["model"] == model][-1]


def assert_served(client) -> None:
    reply = client.chat.completions.create(model="good", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from upstream."


def access_line(daemon, rid: str) -> dict:
    line = daemon.wait_for_line(lambda line: rid in line and "llmedge.access" in line)
    return json.loads(line)


def stream_text(stream) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


# -- Endless answers: refused at the bound, the connection dropped, memory back


@pytest.mark.parametrize("model", ["endless-json", "endless-chunked", "huge-length",
                                   "claude-endless"])
def test_an_endless_answer_is_a_502_too_large_and_its_connection_dropped(client, hostile, model):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_response_too_large"
    entry = hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert entry["closed_by"] == "peer"
    assert entry["bytes_sent"] < 64 * RESPONSE_BOUND  # llmedge stopped reading
    assert_served(client)


def test_endless_answers_leave_the_daemon_s_memory_bounded(client, daemon):
    client.chat.completions.create(model="good", messages=MESSAGES)
    before = daemon.rss()
    for _ in range(10):
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="endless-chunked", messages=MESSAGES)
    # Each holds at most the bound, and gives it back: not 10 times it.
    assert daemon.peak_rss() - before < 6 * RESPONSE_BOUND + 16 * MiB
    assert daemon.rss() - before < 3 * RESPONSE_BOUND + 16 * MiB
    assert_served(client)


def test_an_endless_error_body_is_answered_from_its_status(client, hostile):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="endless-error", messages=MESSAGES)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
    assert "status 500" in caught.value.message
    entry = hostile.wait_closed(last_entry(hostile, MODELS["endless-error"][1])["n"])
    assert entry["closed_by"] == "peer"
    assert_served(client)


def test_a_head_that_never_ends_is_a_502_too_large(client, hostile):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="endless-head", messages=MESSAGES)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_response_too_large")
    assert hostile.wait_closed(last_entry(hostile, MODELS["endless-head"][1])["n"])
    assert_served(client)


@pytest.mark.parametrize("model", ["endless-event", "endless-line"])
def test_an_endless_event_ends_the_stream_with_a_too_large_error(client, hostile, model):
    stream = client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert caught.value.code == "upstream_response_too_large"
    entry = hostile.wait_closed(last_entry(hostile, MODELS[model][1])["n"])
    assert entry["closed_by"] == "peer"
    assert entry["bytes_sent"] < 64 * EVENT_BOUND
    assert_served(client)


# -- Answers that are not HTTP: malformed, not unreachable


@pytest.mark.parametrize("raw", [
    b"HTTTP/1.1 200 OK\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 12\r\n\r\n{}",
    b"<html>proxy error</html>\r\n\r\n",
])
def test_a_garbage_answer_is_malformed_not_unreachable(client, daemon, hostile, raw):
    headers = scripted(hostile, raw)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="script", messages=MESSAGES, extra_headers=headers)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_malformed_response")
    assert "unreachable" not in caught.value.message
    event = access_line(daemon, headers["x-request-id"])
    assert event["error"] == "upstream_malformed_response"
    assert_served(client)


def test_malformed_answers_are_their_own_metric_outcome(client, daemon, hostile):
    headers = scripted(hostile, b"HTTP/1.1 2000 Weird\r\n\r\n")
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="script", messages=MESSAGES, extra_headers=headers)
    access_line(daemon, headers["x-request-id"])
    assert metric(daemon.host_port, "llmedge_upstream_request_duration_seconds_count",
                  outcome="malformed", provider="h") is not None


# -- Headers: an explicit list, values checked


def test_unsafe_upstream_header_values_are_dropped_and_the_answer_kept(client, hostile):
    body = dumps(chat_completion())
    raw = response(200, [
        (b"Content-Type", b"application/json"),
        (b"x-ratelimit-remaining-requests", b"41"),
        (b"x-ratelimit-limit-requests", b"12\x00"),
        (b"x-ratelimit-remaining-tokens", b"1\x01"),
        (b"x-ratelimit-limit-tokens", b"9" * 20000),
        (b"openai-processing-ms-anything", b"1"),
    ], body)
    headers = scripted(hostile, raw)
    answer = client.chat.completions.with_raw_response.create(
        model="script", messages=MESSAGES, extra_headers=headers)
    assert answer.parse().choices[0].message.content == "Hello from upstream."
    assert answer.headers.get("x-ratelimit-limit-tokens") is None
    assert answer.headers.get("openai-processing-ms-anything") is None
    # llmedge's own limiter sets the -requests headers; the upstream's
    # unsafe ones never replace or join them.
    assert "\x00" not in answer.headers.get("x-ratelimit-limit-requests", "")
    assert answer.headers.get("x-ratelimit-remaining-tokens") is None


# -- Streams read right


def litellm_stream() -> bytes:
    """
    A stream as LiteLLM 1.108 ends it: the usage on a chunk whose one
    choice has an empty delta.
    """
    events = [chat_chunk({"role": "assistant", "content": ""})]
    events += [chat_chunk({"content": piece}) for piece in ("Hello", " from", " upstream.")]
    events += [chat_chunk({}, finish_reason="stop"),
               chat_chunk({}, usage=openai_usage()),
               "[DONE]"]
    return response(200, [(b"Content-Type", b"text/event-stream")], sse(*events), "chunked")


def test_usage_on_a_litellm_chunk_is_counted_and_not_shown(client, daemon, hostile):
    headers = scripted(hostile, litellm_stream())
    chunks = list(client.chat.completions.create(
        model="script", messages=MESSAGES, stream=True, extra_headers=headers))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "Hello from upstream."
    assert all(c.usage is None for c in chunks)
    event = access_line(daemon, headers["x-request-id"])
    assert (event["prompt_tokens"], event["completion_tokens"]) == (7, 3)


def test_usage_on_a_litellm_chunk_reaches_a_client_that_asked(client, hostile):
    headers = scripted(hostile, litellm_stream())
    chunks = list(client.chat.completions.create(
        model="script", messages=MESSAGES, stream=True, extra_headers=headers,
        stream_options={"include_usage": True}))
    assert [c.usage.total_tokens for c in chunks if c.usage] == [10]


def test_litellm_usage_settles_the_token_budget(daemon, hostile):
    tpm = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=TPM_KEY, max_retries=0)
    # Each reserves ~4,100 tokens (the default max_tokens) of 10,000 and
    # uses 10: without settling, the third would be refused.
    for _ in range(4):
        headers = scripted(hostile, litellm_stream())
        assert stream_text(tpm.chat.completions.create(
            model="script", messages=MESSAGES, stream=True, extra_headers=headers)) \
            == "Hello from upstream."


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_multi_line_events_reach_the_sdk_whole(client, hostile, line_end):
    events = []
    for piece in ("Hello", " from", " upstream."):
        text = json.dumps(chat_chunk({"content": piece}), indent=1)  # one field a line
        events.append([("data", line) for line in text.split("\n")])
    events.append([("data", "[DONE]")])
    raw = response(200, [(b"Content-Type", b"text/event-stream")],
                   sse(*events, line_end=line_end), "chunked")
    headers = scripted(hostile, raw)
    assert stream_text(client.chat.completions.create(
        model="script", messages=MESSAGES, stream=True, extra_headers=headers)) \
        == "Hello from upstream."


def test_a_stream_answered_with_json_is_streamed(client, hostile):
    raw = response(200, [(b"Content-Type", b"application/json")], dumps(chat_completion()))
    headers = scripted(hostile, raw)
    chunks = list(client.chat.completions.create(
        model="script", messages=MESSAGES, stream=True, extra_headers=headers,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "Hello from upstream."
    assert [c.usage.total_tokens for c in chunks if c.usage] == [10]
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_a_stream_answered_with_an_anthropic_message_is_streamed(client, hostile):
    from llmedge.testing.hostile_wire import anthropic_message

    raw = response(200, [(b"Content-Type", b"application/json")], dumps(anthropic_message()))
    headers = scripted(hostile, raw)
    assert stream_text(client.chat.completions.create(
        model="claude-script", messages=MESSAGES, stream=True, extra_headers=headers)) \
        == "Hello from upstream."


def test_a_stream_answered_with_html_is_a_502_before_anything_is_sent(client, hostile):
    raw = response(200, [(b"Content-Type", b"text/html")], b"<html>captive portal</html>")
    headers = scripted(hostile, raw)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="script", messages=MESSAGES, stream=True,
                                       extra_headers=headers)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_malformed_response")


def test_a_stream_answered_with_html_falls_back_to_the_next_target(client, daemon, hostile):
    raw = response(200, [(b"Content-Type", b"text/html")], b"<html>captive portal</html>")
    # The first attempt's answer, on a connection kept for the next request
    # (well framed, so llmedge pools it): the second gets a good answer.
    headers = scripted(hostile, raw, then="keep")
    assert stream_text(client.chat.completions.create(
        model="fallback", messages=MESSAGES, stream=True, extra_headers=headers)) \
        == "Hello from upstream."
    event = access_line(daemon, headers["x-request-id"])
    assert [attempt["error"] for attempt in event["attempts"]] == [
        "upstream_malformed_response", None]


def test_the_log_shows_no_traceback_after_all_that(daemon, client):
    assert_served(client)
    assert "Traceback" not in daemon.log
    assert not [r for r in daemon.records() if r.get("level") == "critical"]
