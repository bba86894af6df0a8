"""
Authentication, rate limits and deadlines of the real daemon, as the
official OpenAI SDK meets them.
"""

import http.client

import openai
import pytest

from llmedge.keys import hash_key
from llmedge.testing import Daemon

KEY = "sk-protected-alpha"
LIMITED = "sk-protected-limited"
CONFIG = f"""
[[auth.keys]]
name = "limited"
key = "{hash_key(LIMITED)}"
burst = 2
rpm = 1

[providers.slow]
kind = "mock"
latency = 30

[models."mock"]
targets = [{{ provider = "mock", model = "mock" }}]

[models."mock-slow"]
targets = [{{ provider = "slow", model = "mock" }}]
"""
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    config = tmp_path_factory.mktemp("protection") / "llmedge.toml"
    config.write_text(CONFIG)
    env = {"API_KEYS": hash_key(KEY), "SERVER_TIMEOUT_SECONDS": "1"}
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                env=env) as running:
        yield running


def client(daemon, key):
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0)


def test_key_stored_as_sha256_is_accepted(daemon):
    reply = client(daemon, KEY).chat.completions.create(model="mock", messages=MESSAGES)
    assert reply.choices[0].message.content == "You said: hi"


def test_wrong_key_raises_authentication_error(daemon):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(daemon, "sk-not-a-key").models.list()
    assert caught.value.code == "invalid_api_key"
    assert "sk-not-a-key" not in str(caught.value)


def test_missing_key_raises_authentication_error(daemon):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    connection.request("GET", "/v1/models")
    response = connection.getresponse()
    assert response.status == 401
    assert response.getheader("www-authenticate").startswith("Bearer")
    # the SDK insists on a key; tell it to leave the header out
    with pytest.raises(openai.AuthenticationError) as caught:
        client(daemon, "unused").models.list(extra_headers={"Authorization": openai.Omit()})
    assert caught.value.code == "missing_api_key"


def test_health_needs_no_key(daemon):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200


def test_rate_limit_error_after_the_burst_with_headers(daemon):
    limited = client(daemon, LIMITED)
    first = limited.models.with_raw_response.list()
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    limited.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        limited.models.list()
    response = caught.value.response
    assert caught.value.code == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_streamed_response_carries_rate_limit_headers(daemon):
    raw = client(daemon, KEY).chat.completions.with_raw_response.create(
        model="mock", messages=MESSAGES, stream=True)
    assert raw.headers["x-ratelimit-limit-requests"] == "100"
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse()) == "You said: hi"


def test_slow_model_times_out_with_504(daemon):
    with pytest.raises(openai.InternalServerError) as caught:
        client(daemon, KEY).chat.completions.create(model="mock-slow", messages=MESSAGES)
    assert caught.value.status_code == 504
    assert caught.value.code == "timeout"
