"""
Whatever an upstream answers, the client gets a well-formed answer and the
daemon stays healthy: Hypothesis draws upstream answers (framing × status ×
headers × body × event-stream shape, tests/hostile_answers.py), the hostile
fake sends each for one request through the real daemon, and a plain HTTP
client checks what came back.
"""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings

from llmedge.testing import Daemon
from tests.hostile_answers import described_answers
from tests.integration.conftest import API_KEY

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
#: Statuses llmedge may answer for an upstream's doing: its success, the
#: upstream's own 4xx about the request, and its gateway errors. Never 500.
STATUSES = {200, 400, 404, 408, 413, 422, 429, 502, 503, 504}


@pytest.fixture(scope="module")
def daemon(hostile, tmp_path_factory):
    config = tmp_path_factory.mktemp("properties") / "llmedge.toml"
    config.write_text(
        f'[providers.h]\nkind = "openai"\nbase_url = "{hostile.base_url}/v1"\n\n'
        '[models."script"]\ntargets = [ { provider = "h", model = "script" } ]\n')
    env = {"API_KEYS": API_KEY, "RATE_LIMIT_BURST": "100000", "SERVER_TIMEOUT_SECONDS": "10",
           "UPSTREAM_COOLDOWN_SECONDS": "0", "HEALTH_PROBE_INTERVAL_SECONDS": "0",
           "STREAM_KEEPALIVE_SECONDS": "0"}
    with Daemon(args=["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                env=env) as running:
        yield running


def through(daemon, hostile, raw: bytes, stream: bool) -> tuple[int, dict, bytes]:
    """
    Send one chat request whose upstream answer is C{raw}; what the client
    got: status, headers (lower-case names), body.
    """
    rid = "req-" + uuid.uuid4().hex
    hostile.script(rid, [raw], then="close")
    body = {"model": "script", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    host, port = daemon.host_port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/v1/chat/completions", json.dumps(body), {
            "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
            "x-request-id": rid})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def assert_error_shape(status: int, headers: dict, body: bytes) -> None:
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
    assert set(error) == {"message", "type", "param", "code"}


def events_of(body: bytes) -> list[bytes]:
    """
    The data of each event llmedge sent: one C{data:} line an event, as
    llmedge frames them, comments aside.
    """
    events = []
    for block in body.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith(b"data: "), block
        events.append(lines[0][6:])
    return events


@PROPERTY
@given(answer=described_answers(stream=False))
def test_any_upstream_answer_gets_the_client_a_well_formed_answer(daemon, hostile, answer):
    status, headers, body = through(daemon, hostile, answer.raw, stream=False)
    assert status in STATUSES, (status, body[:300])
    if status == 200:
        assert "choices" in json.loads(body)
    else:
        assert_error_shape(status, headers, body)
    if answer.sound and answer.status == 200 and answer.body == "chat":
        assert status == 200, body[:300]


@PROPERTY
@given(answer=described_answers(stream=True))
def test_any_upstream_answer_to_a_stream_gets_the_client_a_well_formed_one(daemon, hostile,
                                                                          answer):
    status, headers, body = through(daemon, hostile, answer.raw, stream=True)
    assert status in STATUSES, (status, body[:300])
    if status != 200:
        assert_error_shape(status, headers, body)
        return
    assert headers["content-type"].startswith("text/event-stream")
    events = events_of(body)
    assert events, body[:300]
    *chunks, last = events
    for data in chunks:
        assert isinstance(json.loads(data), dict)
    # It ends with [DONE], or with the error that cut it short.
    assert last == b"[DONE]" or set(json.loads(last)) == {"error"}, last[:300]


def test_the_daemon_is_healthy_after_every_answer(daemon):
    host, port = daemon.host_port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/health/live")
    assert connection.getresponse().status == 200
    assert "Traceback" not in daemon.log
    assert not [r for r in daemon.records() if r.get("level") == "critical"]
