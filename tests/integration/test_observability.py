"""
What an operator sees of the real daemon: a Prometheus scrape that
promtool accepts and whose counters move, and JSON logs with one access
event per request and no secret anywhere.
"""

import http.client
import json
import subprocess

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmedge.testing import Daemon
from tests.integration.conftest import require_tool

KEY = "sk-observe-secret-1"
LIMITED = "sk-observe-limited-2"
WRONG = "sk-observe-wrong-3"
CONFIG = f"""
[[auth.keys]]
name = "limited"
key = "{LIMITED}"
burst = 1
rpm = 1
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    config = tmp_path_factory.mktemp("observe") / "llmedge.toml"
    config.write_text(CONFIG)
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    with Daemon(args, env={"API_KEYS": KEY, "LOG_LEVEL": "debug"}) as running:
        yield running


@pytest.fixture(scope="module")
def traffic(daemon):
    """
    A mix of requests: answered, streamed, refused for each reason.
    Returns the request ids the daemon answered with.
    """
    ids = []
    good = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=KEY, max_retries=0)
    messages = [{"role": "user", "content": "count me"}]
    raw = good.chat.completions.with_raw_response.create(model="mock", messages=messages)
    ids.append(raw.headers["x-request-id"])
    raw = good.chat.completions.with_raw_response.create(
        model="mock", messages=messages, stream=True)
    list(raw.parse())
    ids.append(raw.headers["x-request-id"])
    for key in (WRONG, LIMITED, LIMITED):
        client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0)
        try:
            ids.append(client.models.with_raw_response.list().headers["x-request-id"])
        except openai.APIStatusError as e:
            ids.append(e.response.headers["x-request-id"])
    return ids


def scrape(daemon) -> str:
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    return response.read().decode()


def samples(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))))


def test_counters_move_with_traffic(daemon, traffic):
    found = samples(scrape(daemon))
    route = "/v1/chat/completions"
    assert value(found, "llmedge_http_requests_total",
                 route=route, method="POST", status="200") == 2
    assert value(found, "llmedge_auth_failures_total", reason="invalid_api_key") == 1
    assert value(found, "llmedge_rate_limited_total", key="limited") == 1
    assert value(found, "llmedge_tokens_total",
                 provider="mock", model="mock", type="completion") > 0
    assert value(found, "llmedge_time_to_first_token_seconds_count",
                 provider="mock", model="mock") == 1
    assert value(found, "llmedge_http_requests_in_flight") == 1  # the scrape itself


def test_promtool_accepts_the_scrape(daemon, traffic):
    require_tool("promtool")
    result = subprocess.run(["promtool", "check", "metrics"], input=scrape(daemon),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_log_line_is_one_json_object(daemon, traffic):
    records = [json.loads(line) for line in daemon.output]
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_one_access_event_per_request(daemon, traffic):
    events = [json.loads(line) for line in daemon.output]
    access = {e["request_id"]: e for e in events if e["logger"] == "llmedge.access"}
    for request_id in traffic:
        assert request_id in access
    streamed = access[traffic[1]]
    assert streamed["stream"] is True
    assert streamed["first_token_ms"] is not None
    assert streamed["key"].startswith("key-")
    assert access[traffic[2]]["error"] == "invalid_api_key"
    assert access[traffic[4]]["status"] == 429


def test_start_up_logs_configuration_and_listeners(daemon):
    events = [json.loads(line) for line in daemon.output]
    starting = [e for e in events if e["msg"].startswith("llmedge ") and "config" in e]
    assert starting and "auth.api_keys = <1 key>" in starting[0]["config"]
    assert any(e["msg"].startswith("llmedge listening on tcp:") for e in events)


def test_no_key_appears_in_any_log_line(daemon, traffic):
    log = daemon.log
    for secret in (KEY, LIMITED, WRONG, "Bearer"):
        assert secret not in log
