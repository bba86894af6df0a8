"""
Spans exported over OTLP/HTTP by the real daemon to a loopback collector.
"""

import json

import openai
import pytest

from llmedge.testing import Daemon, FakeCollector

KEY = "sk-otlp-test"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exported():
    """
    Run a daemon exporting to a fake collector, send two requests, stop the
    daemon (which flushes), and return (spans, access events).
    """
    collector = FakeCollector()
    try:
        daemon = Daemon(env={"API_KEYS": KEY, "OTLP_ENDPOINT": collector.url}).start()
        client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=KEY, max_retries=0)
        client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "trace me"}],
            extra_headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        client.models.list()
        daemon.stop()
        events = [json.loads(line) for line in daemon.output]
        access = [e for e in events if e["logger"] == "llmedge.access"]
        yield collector.spans(), access
    finally:
        collector.close()


def test_server_span_continues_the_clients_trace(exported):
    spans, access = exported
    chat = next(e for e in access if e["route"] == "/v1/chat/completions")
    (server,) = [s for s in spans if s["span_id"] == chat["span_id"]]
    assert server["trace_id"] == TRACE
    assert server["parent_span_id"] == PARENT
    assert server["kind"] == "SPAN_KIND_SERVER"
    assert server["name"] == "POST /v1/chat/completions"
    assert server["attributes"]["http.response.status_code"] == 200
    assert server["attributes"]["llmedge.request_id"] == chat["request_id"]


def test_provider_call_is_a_client_span_under_the_server_span(exported):
    spans, access = exported
    chat = next(e for e in access if e["route"] == "/v1/chat/completions")
    (client,) = [s for s in spans if s["parent_span_id"] == chat["span_id"]]
    assert client["kind"] == "SPAN_KIND_CLIENT"
    assert client["trace_id"] == TRACE
    assert client["attributes"]["gen_ai.request.model"] == "mock"
    assert client["attributes"]["gen_ai.usage.output_tokens"] == chat["completion_tokens"]


def test_request_without_traceparent_starts_its_own_trace(exported):
    spans, access = exported
    models = next(e for e in access if e["route"] == "/v1/models")
    (server,) = [s for s in spans if s["span_id"] == models["span_id"]]
    assert server["trace_id"] == models["trace_id"] != TRACE
    assert server["parent_span_id"] is None
