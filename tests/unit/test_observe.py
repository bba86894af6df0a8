"""
L{llmedge.observe.recorder.Recorder}: each request that ends is counted in
the metrics and described by one access event, from the same values.
"""

import pytest
from twisted.logger import capturedLogs

from llmedge.observe.exchange import Exchange
from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}
ROUTE = "/v1/chat/completions"


def slow_edge(toml):
    return Harness({}, toml('[providers.mock]\nkind = "mock"\nlatency = 0.25\n'))


def answered(edge):
    """
    Send a chat request, let the mock answer it, and return the access
    event it logged.
    """
    connection = edge.connect()
    with capturedLogs() as events:
        connection.send(raw_request("POST", ROUTE, CHAT))
        edge.reactor.advance(0.25)
    assert connection.response().status == 200
    [found] = [e for e in events if e.get("log_namespace") == "llmedge.access"]
    return found


def test_access_message_names_the_duration_it_logs(toml):
    found = answered(slow_edge(toml))
    assert found["duration_ms"] == pytest.approx(250.0)
    assert found["msg"] == f"POST {ROUTE} 200 {found['duration_ms']}ms"


def test_request_is_counted_once_it_is_logged(toml):
    edge = slow_edge(toml)
    answered(edge)
    registry = edge.service.metrics.registry
    assert registry.get_sample_value("llmedge_http_requests_total", {
        "route": ROUTE, "method": "POST", "status": "200"}) == 1.0
    assert registry.get_sample_value("llmedge_http_requests_in_flight") == 0.0


@pytest.mark.parametrize("count", [-5, 10**400, True, 2.0, "7", None])
def test_a_token_count_no_upstream_could_mean_is_not_taken(count):
    exchange = Exchange(started=0.0)
    exchange.count_usage({"prompt_tokens": count, "completion_tokens": 3})
    assert (exchange.prompt_tokens, exchange.completion_tokens) == (None, 3)

