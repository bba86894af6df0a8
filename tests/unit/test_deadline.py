"""
Deadlines: a request that runs out of time is answered 504 (or its stream
ended with an error event) and the work behind it is cancelled.
"""

import json

import pytest
from twisted.internet.defer import Deferred

from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def edge():
    return Harness({"SERVER_TIMEOUT_SECONDS": "5"})


def work_timers(edge):
    """
    Delayed calls other than the HTTP channel's idle timeout.
    """
    return [c for c in edge.reactor.getDelayedCalls() if "TimeoutMixin" not in repr(c.func)]


def never_answering(edge):
    """
    Make the mock provider never answer; return the list its canceller
    appends to.
    """
    cancelled = []
    provider = edge.service.router.route("mock").targets[0].provider
    provider.chat_completion = lambda call, model: Deferred(cancelled.append)
    return cancelled


def test_provider_that_never_answers_gets_504_at_the_deadline(edge):
    cancelled = never_answering(edge)
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    edge.reactor.advance(4.9)
    assert connection.transport.value() == b""
    assert cancelled == []
    edge.reactor.advance(0.1)
    response = connection.response()
    assert response.status == 504
    error = response.json()["error"]
    assert error["code"] == "timeout"
    assert error["type"] == "server_error"
    assert len(cancelled) == 1


def test_no_timer_is_left_after_a_timely_answer(edge):
    response = edge.request("POST", "/v1/chat/completions", CHAT, advance=False)
    assert response.status == 200
    assert work_timers(edge) == []


def test_slow_mock_model_times_out_end_to_end(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text(
        '[providers.slow]\nkind = "mock"\nlatency = 60\n'
        '[models."mock-slow"]\ntargets = [{provider = "slow", model = "mock"}]\n')
    edge = Harness({"SERVER_TIMEOUT_SECONDS": "2"}, config_path=str(config))
    response = edge.request("POST", "/v1/chat/completions", dict(CHAT, model="mock-slow"))
    assert response.status == 504
    # the mock's delayed answer was cancelled with the request
    assert work_timers(edge) == []


def test_stream_that_outlives_the_deadline_ends_with_an_error_event(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text('[providers.mock]\nkind = "mock"\nstream_interval = 1\n')
    edge = Harness({"SERVER_TIMEOUT_SECONDS": "3"}, config_path=str(config))
    response = edge.request("POST", "/v1/chat/completions", dict(CHAT, stream=True))
    assert response.status == 200
    assert response.complete
    events = response.events()
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    assert json.loads(events[-1])["error"]["code"] == "timeout"
    assert b"[DONE]" not in events


def test_deadline_counts_from_arrival_not_from_each_step(tmp_path):
    # 2 s of latency then a stream of events 1 s apart: the 3 s deadline
    # covers both parts together.
    config = tmp_path / "llmedge.toml"
    config.write_text('[providers.mock]\nkind = "mock"\nlatency = 2\nstream_interval = 1\n')
    edge = Harness({"SERVER_TIMEOUT_SECONDS": "3"}, config_path=str(config))
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", dict(CHAT, stream=True)))
    for _ in range(30):
        edge.reactor.advance(0.5)
    events = connection.response().events()
    assert len(events) == 2  # one chunk at 3 s... then the timeout event
    assert json.loads(events[-1])["error"]["code"] == "timeout"


def test_disconnect_cancels_before_the_deadline(edge):
    cancelled = never_answering(edge)
    connection = edge.connect()
    connection.send(raw_request("POST", "/v1/chat/completions", CHAT))
    connection.lose()
    assert len(cancelled) == 1
    edge.reactor.advance(10)
    assert connection.transport.value() == b""


def test_health_has_no_deadline(edge):
    assert edge.request("GET", "/health", advance=False).status == 200
