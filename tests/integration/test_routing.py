"""
Routing through the real daemon (issue 14): each public model's
deployments chosen by its strategy, each deployment's health kept apart
from its neighbours', failures retried within the request, one tenant
unable to move everyone else's traffic.

The official OpenAI SDK (C{max_retries=0}: every retry seen here is
llmedge's) asks a real L{Daemon} in front of a L{FakeUpstream} whose
deployments change while the daemon runs (C{name=} in the upstream model,
L{FakeUpstream.behave}). What went where is read from the fake's log (one
entry per request, with the model string it received), the access event
(C{attempts}, C{strategy}) and C{/metrics}. Nothing sleeps: every wait is a
bounded poll for something the test can observe, and proportions are
checked with bounds several standard deviations wide.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import uuid
from collections import Counter

import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream, wait_until
from tests.integration.conftest import metric

KEY = "sk-routing-tenant-b"
#: The tenant whose requests are too large for the upstream's budget.
OVERSIZE_KEY = "sk-routing-tenant-a"
MESSAGES = [{"role": "user", "content": "hello"}]
DOWN_URL = "http://127.0.0.1:9/v1"  # nothing listens there: connection refused
#: Bounds for a slow, shared machine.
WAIT = 60.0
LONG_WAIT = 180.0

#: Breaker settings of the main daemon: three failures open a deployment,
#: which then stays open longer than any test here runs.
BREAKER_FAILURES = 3
COOLDOWN = 120


def target(provider: str, model: str, weight: float | None = None) -> str:
    extra = "" if weight is None else f", weight = {weight}"
    return f'{{ provider = "{provider}", model = "{model}"{extra} }}'


def model_table(name: str, targets: list[str], strategy: str | None = None,
                max_attempts: int | None = None) -> str:
    lines = [f'[models."{name}"]']
    if strategy is not None:
        lines.append(f'strategy = "{strategy}"')
    if max_attempts is not None:
        lines.append(f"max_attempts = {max_attempts}")
    lines.append(f"targets = [ {', '.join(targets)} ]")
    return "\n".join(lines) + "\n"


def providers(base_url: str) -> str:
    return f"""
[[auth.keys]]
name = "tenant-a"
key = "{OVERSIZE_KEY}"

[[auth.keys]]
name = "tenant-b"
key = "{KEY}"

[providers.up]
kind = "openai"
base_url = "{base_url}/v1"

[providers.down-a]
kind = "openai"
base_url = "{DOWN_URL}"
connect_timeout = 2

[providers.down-b]
kind = "openai"
base_url = "{DOWN_URL}"
connect_timeout = 2
"""


def up(name: str, extra: str = "", weight: float | None = None) -> str:
    """
    A deployment on the fake, named for L{FakeUpstream.behave}.
    """
    return target("up", f"fake+name={name}{extra}", weight)


MODELS = "\n".join([
    model_table("plain", [up("plain")]),
    model_table("t1-ordered", [target("down-a", "fake"), up("t1-ordered")]),
    model_table("t1-weighted", [target("down-b", "fake"), up("t1-weighted")], "weighted"),
    model_table("t2-broken", [up("t2-broken", "+status=500")]),
    model_table("t2-pair", [up("t2-broken", "+status=500"), up("t2-good")]),
    model_table("t4-weighted", [up("t4-heavy", weight=3), up("t4-light", weight=1)],
                "weighted"),
    model_table("t5-busy", [up("t5-a"), up("t5-b")], "least-busy"),
    model_table("t5-a-only", [up("t5-a")]),
    model_table("t6-latency", [up("t6-a"), up("t6-b")], "latency"),
    model_table("t7-three", [up("t7-three")], max_attempts=3),
    model_table("t7-two", [up("t7-two")], max_attempts=2),
    model_table("t8-stream", [target("up", "fake+reset-after=1+interval=0.2+chunks=5"),
                              up("t8-spare")], max_attempts=3),
    model_table("t9-fair", [up("t9-first"), up("t9-fallback")]),
    model_table("t10-solo", [target("up", "fake+status=429+retry-after=7")]),
    model_table("t10-pair", [up("t10-limited"), up("t10-other")]),
    model_table("t11-counted", [up("t11-bad", "+status=500"), up("t11-good")]),
    model_table("t12-slow", [up("t12-slow")]),
])

ENV = {
    "RATE_LIMIT_BURST": "100000",
    "SERVER_TIMEOUT_SECONDS": "60",
    "STREAM_KEEPALIVE_SECONDS": "0",
    "HEALTH_PROBE_INTERVAL_SECONDS": "0",
    "UPSTREAM_RETRY_BACKOFF_SECONDS": "0.05",
}


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as running:
        yield running


def start(upstream, tmp_path_factory, models: str, **env: str):
    config = tmp_path_factory.mktemp("routing") / "llmedge.toml"
    config.write_text(providers(upstream.base_url) + "\n" + models)
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    return Daemon(args, env={**ENV, **env})


@pytest.fixture(scope="module")
def daemon(upstream, tmp_path_factory):
    with start(upstream, tmp_path_factory, MODELS,
               UPSTREAM_BREAKER_FAILURES=str(BREAKER_FAILURES),
               UPSTREAM_COOLDOWN_SECONDS=str(COOLDOWN)) as running:
        yield running


@pytest.fixture(scope="module")
def quick_breakers(upstream, tmp_path_factory):
    """
    A daemon whose breakers open at the first failure and stay open.
    """
    models = model_table("t3-all", [up("t3-a"), up("t3-b")])
    with start(upstream, tmp_path_factory, models, UPSTREAM_BREAKER_FAILURES="1",
               UPSTREAM_COOLDOWN_SECONDS="600") as running:
        yield running


@pytest.fixture
def behave(upstream):
    """
    L{FakeUpstream.behave}, with every name it set cleared after the test.
    """
    named: set[str] = set()

    def behave(name: str, options: str) -> None:
        named.add(name)
        upstream.behave(name, options)

    yield behave
    for name in named:
        upstream.behave(name, "")


def sdk(daemon, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=key, max_retries=0,
                         timeout=WAIT)


@pytest.fixture
def client(daemon, upstream):
    upstream.reset()
    return sdk(daemon)


def new_id() -> str:
    return "req-" + uuid.uuid4().hex


def ask(client, model: str, rid: str | None = None, **fields):
    """
    One chat completion for C{model}, tagged with request id C{rid}.
    """
    return client.chat.completions.create(
        model=model, messages=MESSAGES, extra_headers={"x-request-id": rid or new_id()},
        **fields)


def access_event(daemon, rid: str) -> dict:
    line = daemon.wait_for_line(lambda line: rid in line and '"llmedge.access"' in line,
                                timeout=WAIT)
    return json.loads(line)


def tries(event: dict) -> list[tuple[str, str, str]]:
    """
    The access event's attempts as C{(provider, model, outcome)}.
    """
    return [(a["provider"], a["model"], a["outcome"]) for a in event.get("attempts") or []]


def served(upstream, *models: str) -> list[str]:
    """
    The model strings the fake received, in order, of those among C{models}.
    """
    return [entry["model"] for entry in upstream.log() if entry["model"] in models]


def breaker(daemon, provider: str, model: str) -> float | None:
    """
    A deployment's breaker as C{/metrics} shows it: 0 closed, 1 half-open,
    2 open.
    """
    return metric(daemon.host_port, "llmedge_deployment_breaker_state", provider=provider, model=model)


@contextlib.contextmanager
def in_flight(daemon, upstream, model: str, upstream_model: str, count: int):
    """
    C{count} requests for C{model} held open on raw connections, until the
    fake has received them all; on exit the connections are closed and the
    fake has seen each one go away (the daemon cancelled it upstream).
    """
    rids = [new_id() for _ in range(count)]
    connections = []
    try:
        for rid in rids:
            connection = http.client.HTTPConnection(*daemon.host_port, timeout=WAIT)
            connections.append(connection)
            connection.request("POST", "/v1/chat/completions",
                               json.dumps({"model": model, "messages": MESSAGES}),
                               {"Authorization": f"Bearer {KEY}",
                                "Content-Type": "application/json", "x-request-id": rid})

        def arrived():
            entries = [e for e in upstream.log()
                       if e["x_request_id"] in rids and e["model"] == upstream_model]
            return entries if len(entries) == count else None

        entries = wait_until(arrived, WAIT, f"{count} requests for {upstream_model} upstream")
        yield
    finally:
        for connection in connections:
            connection.close()
    for entry in entries:
        upstream.wait_for(entry["n"], "disconnected_at", timeout=WAIT)


# Failure of one deployment


@pytest.mark.parametrize("model,down", [("t1-ordered", "down-a"), ("t1-weighted", "down-b")])
def test_the_sdk_sees_no_error_while_one_of_two_deployments_is_down(client, daemon, model,
                                                                    down):
    answers = [ask(client, model).choices[0].message.content for _ in range(20)]
    assert answers == ["chunk0 chunk1 chunk2 chunk3 chunk4"] * 20
    assert breaker(daemon, down, "fake") == 2
    assert metric(daemon.host_port, "llmedge_provider_cooling_down", provider=down) == 1


def test_a_good_model_works_right_after_another_model_on_its_provider_failed(client, daemon):
    with pytest.raises(openai.APIStatusError):
        ask(client, "t2-broken")
    assert breaker(daemon, "up", "fake+name=t2-good") == 0
    rid = new_id()
    answer = ask(client, "t2-pair", rid)
    assert answer.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert tries(access_event(daemon, rid)) == [
        ("up", "fake+name=t2-broken+status=500", "error"),
        ("up", "fake+name=t2-good", "ok"),
    ]


def test_every_target_is_tried_when_every_breaker_is_open(quick_breakers, upstream, behave):
    client = sdk(quick_breakers)
    behave("t3-a", "status=500")
    behave("t3-b", "status=500")
    with pytest.raises(openai.APIStatusError):
        ask(client, "t3-all")
    for name in ("t3-a", "t3-b"):
        assert breaker(quick_breakers, "up", f"fake+name={name}") == 2
    behave("t3-b", "")
    rid = new_id()
    answer = ask(client, "t3-all", rid)
    assert answer.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert tries(access_event(quick_breakers, rid)) == [
        ("up", "fake+name=t3-a", "error"),
        ("up", "fake+name=t3-b", "ok"),
    ]


# Strategies


def test_weighted_spreads_requests_by_weight(client, upstream):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: ask(client, "t4-weighted"), range(1000)))
    counts = Counter(served(upstream, "fake+name=t4-heavy", "fake+name=t4-light"))
    assert sum(counts.values()) == 1000
    # 75 % of 1,000 draws: one standard deviation is 1.4 %, so 6 % is over 4.
    assert 0.69 <= counts["fake+name=t4-heavy"] / 1000 <= 0.81


def test_least_busy_sends_new_requests_away_from_a_deployment_busy_with_slow_ones(
        client, daemon, upstream, behave):
    ask(client, "t5-busy")
    assert served(upstream, "fake+name=t5-a", "fake+name=t5-b") == ["fake+name=t5-a"]
    behave("t5-a", "slow-headers=600")
    with in_flight(daemon, upstream, "t5-a-only", "fake+name=t5-a", 3):
        rids = [new_id() for _ in range(10)]
        for rid in rids:
            ask(client, "t5-busy", rid)
        assert [e["model"] for e in upstream.log() if e["x_request_id"] in rids] \
            == ["fake+name=t5-b"] * 10


def drive_until_most_go_to(client, upstream, model: str, deployments: tuple[str, ...],
                           winner: str, window: int = 20, share: float = 0.75) -> None:
    """
    Ask for C{model} until, of the last C{window} requests its
    C{deployments} received, C{share} went to C{winner}; bounded.
    """

    def most():
        for _ in range(5):
            ask(client, model)
        last = served(upstream, *deployments)[-window:]
        return len(last) == window and last.count(winner) >= share * window

    wait_until(most, LONG_WAIT, f"most of {model}'s traffic on {winner}")


def test_latency_moves_traffic_to_the_fast_deployment_and_back_after_it_recovers(
        client, upstream, behave):
    # The other deployment answers in 0.1 s throughout: "recovered" is then
    # clearly faster than it, and coming back is no coin toss between equals.
    deployments = ("fake+name=t6-a", "fake+name=t6-b")
    behave("t6-b", "slow-headers=0.1")
    behave("t6-a", "slow-headers=0.3")
    drive_until_most_go_to(client, upstream, "t6-latency", deployments, "fake+name=t6-b")
    behave("t6-a", "")
    drive_until_most_go_to(client, upstream, "t6-latency", deployments, "fake+name=t6-a")


@pytest.mark.parametrize("model,strategy", [("plain", "ordered"), ("t4-weighted", "weighted"),
                                            ("t5-busy", "least-busy")])
def test_the_access_event_names_the_strategy(client, daemon, model, strategy):
    rid = new_id()
    ask(client, model, rid)
    assert access_event(daemon, rid)["strategy"] == strategy


# Retries


def test_a_deployment_that_fails_twice_is_retried_until_it_answers(client, daemon, upstream,
                                                                   behave):
    behave("t7-three", "fail-first=2")
    rid = new_id()
    answer = ask(client, "t7-three", rid)
    assert answer.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4"
    event = access_event(daemon, rid)
    assert [(a["model"], a["status"], a["outcome"]) for a in event["attempts"]] == [
        ("fake+name=t7-three", 503, "error"),
        ("fake+name=t7-three", 503, "error"),
        ("fake+name=t7-three", 200, "ok"),
    ]


def test_retries_stop_at_max_attempts_with_the_upstreams_error(client, upstream, behave):
    behave("t7-two", "fail-first=2")
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "t7-two")
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_error"
    assert served(upstream, "fake+name=t7-two") == ["fake+name=t7-two"] * 2


def test_a_stream_that_breaks_after_its_first_event_is_not_retried(client, daemon, upstream):
    rid = new_id()
    stream = ask(client, "t8-stream", rid, stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert served(upstream, "fake+reset-after=1+interval=0.2+chunks=5", "fake+name=t8-spare") \
        == ["fake+reset-after=1+interval=0.2+chunks=5"]
    # The event lists attempts only when more than one was made or the one
    # made failed (README, Routing): here it may be absent, never longer.
    assert len(access_event(daemon, rid).get("attempts") or [None]) == 1


# Rate limits and fairness


def test_one_tenants_oversize_requests_leave_others_on_the_first_target(
        client, daemon, upstream, behave):
    # The oversize answers say "retry after 30 s" and come as many as open a
    # breaker: taken for the deployment's failures, they would send the
    # other tenant to the fallback.
    behave("t9-first", f"fail-first={BREAKER_FAILURES}+oversize+retry-after=30")
    oversize = sdk(daemon, OVERSIZE_KEY)
    for _ in range(BREAKER_FAILURES):
        with contextlib.suppress(openai.APIError):
            ask(oversize, "t9-fair")
    assert len(served(upstream, "fake+name=t9-first")) == BREAKER_FAILURES
    rids = [new_id() for _ in range(5)]
    for rid in rids:
        ask(client, "t9-fair", rid)
    others = [e["model"] for e in upstream.log() if e["x_request_id"] in rids]
    assert others == ["fake+name=t9-first"] * 5
    assert breaker(daemon, "up", "fake+name=t9-first") == 0


def test_a_429_from_the_only_deployment_reaches_the_client_with_its_retry_after(client):
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "t10-solo")
    assert caught.value.response.headers["retry-after"] == "7"


def test_a_deployment_that_said_retry_after_is_asked_again_only_after_it(
        client, upstream, behave):
    behave("t10-limited", "fail-first=1+status=429+retry-after=3")
    limited, other = "fake+name=t10-limited", "fake+name=t10-other"
    assert ask(client, "t10-pair").choices[0].message.content
    assert served(upstream, limited, other) == [limited, other]

    def asked_again():
        ask(client, "t10-pair")
        return [e for e in upstream.log() if e["model"] == limited][1:]

    again = wait_until(asked_again, WAIT, "the limited deployment asked again")[0]
    entries = upstream.log()
    first = next(e for e in entries if e["model"] == limited)
    assert again["received_at"] - first["received_at"] >= 3 - 0.05
    during = [e for e in entries if e["model"] == other
              and first["received_at"] < e["received_at"] < again["received_at"]]
    assert len(during) >= 2  # the first request's fallback, and one sent within the wait


# Metrics


def test_each_attempt_is_counted_by_deployment_and_outcome(client, daemon):
    ask(client, "t11-counted")
    bad, good = "fake+name=t11-bad+status=500", "fake+name=t11-good"
    counted = "llmedge_deployment_attempts_total"
    wait_until(lambda: metric(daemon.host_port, counted, provider="up", model=good, outcome="ok") == 1,
               WAIT, "the good attempt counted")
    assert metric(daemon.host_port, counted, provider="up", model=bad, outcome="error") == 1
    assert metric(daemon.host_port, "llmedge_deployment_first_byte_seconds_count",
                  provider="up", model=good) == 1


def test_requests_in_flight_on_a_deployment_are_shown_until_they_end(client, daemon, upstream,
                                                                     behave):
    behave("t12-slow", "slow-headers=600")
    gauge = "llmedge_deployment_in_flight"
    with in_flight(daemon, upstream, "t12-slow", "fake+name=t12-slow", 2):
        wait_until(lambda: metric(daemon.host_port, gauge, provider="up", model="fake+name=t12-slow")
                   == 2, WAIT, "two requests in flight")
    wait_until(lambda: metric(daemon.host_port, gauge, provider="up", model="fake+name=t12-slow") == 0,
               WAIT, "no request in flight")
