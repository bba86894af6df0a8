"""
Rate limits over HTTP: the burst, refill, OpenAI's headers, 429 with
Retry-After, per-key overrides, and buckets by address without auth.
"""

import pytest

from tests.unit.support import Harness, raw_request

KEY = "sk-rate-test"
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
AUTH = {"x-api-key": KEY}


@pytest.fixture
def edge():
    # 60 per minute: one request a second after a burst of 3
    return Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY, "RATE_LIMIT_ENABLED": "true",
                    "RATE_LIMIT_RPM": "60", "RATE_LIMIT_BURST": "3"})


def get(edge, headers=AUTH):
    return edge.request("GET", "/v1/models", headers=headers, advance=False)


def test_admitted_response_carries_the_limit_headers(edge):
    response = get(edge)
    assert response.status == 200
    assert response.header("x-ratelimit-limit-requests") == "3"
    assert response.header("x-ratelimit-remaining-requests") == "2"
    assert response.header("x-ratelimit-reset-requests") == "1s"


def test_remaining_counts_down_through_the_burst(edge):
    remaining = [get(edge).header("x-ratelimit-remaining-requests") for _ in range(3)]
    assert remaining == ["2", "1", "0"]


def test_request_past_the_burst_is_429_with_retry_after(edge):
    for _ in range(3):
        get(edge)
    response = get(edge)
    assert response.status == 429
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert response.header("retry-after") == "1"
    assert response.header("x-ratelimit-remaining-requests") == "0"
    assert KEY not in response.body.decode()


def test_retry_after_is_whole_seconds_rounded_up(edge):
    for _ in range(3):
        get(edge)
    edge.reactor.advance(0.1)
    response = get(edge)
    assert response.header("retry-after") == "1"
    assert response.header("x-ratelimit-reset-requests") == "2.9s"


def test_bucket_refills_at_the_configured_rate(edge):
    for _ in range(3):
        get(edge)
    assert get(edge).status == 429
    edge.reactor.advance(1)
    assert get(edge).status == 200
    assert get(edge).status == 429


def test_429_says_too_many_requests_not_unknown_status(edge):
    # Twisted's table of reason phrases has no 429.
    for _ in range(3):
        get(edge)
    connection = edge.connect()
    connection.send(raw_request("GET", "/v1/models", None, AUTH))
    assert connection.transport.value().startswith(b"HTTP/1.1 429 Too Many Requests\r\n")


def test_refused_request_does_not_consume(edge):
    for _ in range(3):
        get(edge)
    for _ in range(10):
        get(edge)
    edge.reactor.advance(1)
    assert get(edge).status == 200


def test_health_is_not_rate_limited(edge):
    for _ in range(3):
        get(edge)
    response = edge.request("GET", "/health", advance=False)
    assert response.status == 200
    assert response.header("x-ratelimit-limit-requests") is None


def test_keys_have_separate_buckets():
    edge = Harness({"API_KEYS": "sk-a,sk-b", "AUTH_ENABLED": "true",
                    "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"})
    assert get(edge, {"x-api-key": "sk-a"}).status == 200
    assert get(edge, {"x-api-key": "sk-a"}).status == 429
    assert get(edge, {"x-api-key": "sk-b"}).status == 200


def test_named_key_has_its_own_limit(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[[auth.keys]]\nname = "big"\nkey = "sk-big"\nburst = 5\nrpm = 6000\n')
    edge = Harness({"AUTH_ENABLED": "true", "API_KEYS": "sk-small",
                    "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"},
                   config_path=str(config))
    big = get(edge, {"x-api-key": "sk-big"})
    assert big.header("x-ratelimit-limit-requests") == "5"
    assert big.header("x-ratelimit-reset-requests") == "10ms"
    assert get(edge, {"x-api-key": "sk-small"}).header("x-ratelimit-limit-requests") == "1"


def test_without_auth_the_client_address_is_the_bucket():
    edge = Harness({"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"})
    assert get(edge, {}).status == 200
    assert get(edge, {}).status == 429


def test_stream_sends_the_limit_headers_before_the_first_event(edge):
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", dict(CHAT, stream=True), AUTH))
    response = connection.response()
    assert response.events() == []
    assert response.header("x-ratelimit-remaining-requests") == "2"


def test_unauthenticated_requests_do_not_spend_a_keys_budget(edge):
    for _ in range(5):
        assert get(edge, {"x-api-key": "sk-wrong"}).status == 401
    assert get(edge).status == 200


def redis_edge(policy):
    # The Redis store is never started here: every decision finds Redis
    # unavailable, as during an outage.
    return Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY, "RATE_LIMIT_ENABLED": "true",
                    "RATE_LIMIT_RPM": "60", "RATE_LIMIT_BURST": "3",
                    "RATE_LIMIT_BACKEND": "redis", "REDIS_FAILURE_POLICY": policy})


def test_redis_unavailable_fail_closed_is_503_in_openai_shape():
    response = get(redis_edge("fail-closed"))
    assert response.status == 503
    assert response.header("Content-Type") == "application/json"
    assert response.header("Retry-After") == "1"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "rate_limit_unavailable")
    assert set(error) == {"message", "type", "param", "code"}


def test_redis_unavailable_fail_open_admits_with_full_bucket_headers():
    edge = redis_edge("fail-open")
    responses = [get(edge) for _ in range(5)]  # past the burst: not limited
    assert [r.status for r in responses] == [200] * 5
    assert {r.header("x-ratelimit-remaining-requests") for r in responses} == {"2"}
    assert responses[0].header("x-ratelimit-limit-requests") == "3"
    assert responses[0].header("x-ratelimit-reset-requests") == "1s"
