"""
Prometheus metrics as a scraper sees them: C{GET /metrics} parsed with
prometheus_client's own parser, every label bounded, every duration taken
from the fake clock.
"""

import json
import platform
import random
from types import SimpleNamespace

import pytest
import twisted
from prometheus_client import Gauge, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from llmedge import __version__
from llmedge.cache.memory import MemoryCache
from llmedge.observe.exchange import Exchange
from llmedge.observe.fast_metrics import Client, FastGauge, LockFree
from llmedge.observe.metrics import Finished, Metrics
from llmedge.routing.health import Health
from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}
ROUTE = "/v1/chat/completions"
KEY = "sk-metrics-test"


def samples(edge, name, headers=None):
    """
    Scrape C{edge} and return C{(labels, value)} for every sample called
    C{name}.
    """
    response = edge.request("GET", "/metrics", headers=headers)
    assert response.status == 200
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(response.body.decode())
        for s in family.samples
        if s.name == name
    ]


def sample(edge, name, **labels) -> float | None:
    """
    The value of the sample C{name} with exactly C{labels}, or L{None}.
    """
    for found, value in samples(edge, name):
        if found == labels:
            return value
    return None


def mock_edge(toml, options, environ=None):
    """
    A harness whose mock provider has C{options} (TOML lines).
    """
    return Harness(environ or {}, toml('[providers.mock]\nkind = "mock"\n' + options))


def post(edge, body=CHAT):
    """
    Send a chat request without running the clock; return the connection.
    """
    connection = edge.connect()
    connection.send(raw_request("POST", ROUTE, body))
    return connection


# -- requests ------------------------------------------------------------------


def test_answered_request_is_counted_by_route_method_and_status():
    edge = Harness()
    assert sample(edge, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="200") is None
    edge.request("POST", ROUTE, CHAT)
    assert sample(edge, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="200") == 1.0
    edge.request("POST", ROUTE, CHAT)
    assert sample(edge, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="200") == 2.0


def test_unknown_path_is_counted_under_route_other():
    edge = Harness()
    assert edge.request("GET", "/no/such/thing").status == 404
    assert sample(edge, "llmedge_http_requests_total", route="other", method="GET",
                  status="404") == 1.0


def test_raw_paths_never_become_route_labels():
    edge = Harness()
    rng = random.Random(1234)
    paths = ["/" + "/".join(f"{rng.getrandbits(48):012x}" for _ in range(rng.randint(1, 3)))
             for _ in range(50)]
    assert len(set(paths)) == 50
    for path in paths:
        assert edge.request("GET", path).status == 404
    response = edge.request("GET", "/metrics")
    for path in paths:
        assert path not in response.body.decode()
    routes = {labels["route"] for labels, _ in samples(edge, "llmedge_http_requests_total")}
    assert routes == {"other", "/metrics"}  # the scrape above
    assert sample(edge, "llmedge_http_requests_total", route="other", method="GET",
                  status="404") == 50.0


def test_model_path_is_counted_under_its_template():
    edge = Harness()
    edge.request("GET", "/v1/models/mock")
    assert sample(edge, "llmedge_http_requests_total", route="/v1/models/{model}",
                  method="GET", status="200") == 1.0


def test_unknown_method_is_counted_as_other():
    edge = Harness()
    edge.request("BREW", "/health")
    methods = {labels["method"] for labels, _ in samples(edge, "llmedge_http_requests_total")}
    assert "BREW" not in methods
    assert "other" in methods


def test_duration_is_the_clock_time_from_request_to_last_byte(toml):
    edge = mock_edge(toml, "latency = 2\n")
    connection = post(edge)
    edge.reactor.advance(2)
    assert connection.response().status == 200
    assert sample(edge, "llmedge_http_request_duration_seconds_count", route=ROUTE) == 1.0
    assert sample(edge, "llmedge_http_request_duration_seconds_sum",
                  route=ROUTE) == pytest.approx(2.0)


def test_upstream_wait_is_not_overhead(toml):
    edge = mock_edge(toml, "latency = 2\n")
    connection = post(edge)
    edge.reactor.advance(2)
    assert connection.response().status == 200
    assert sample(edge, "llmedge_overhead_seconds_count", route=ROUTE) == 1.0
    assert sample(edge, "llmedge_overhead_seconds_sum", route=ROUTE) == pytest.approx(0.0)


def test_upstream_duration_is_labelled_by_provider_model_and_outcome(toml):
    edge = mock_edge(toml, "latency = 2\n")
    connection = post(edge)
    edge.reactor.advance(2)
    assert connection.response().status == 200
    labels = dict(provider="mock", model="mock", outcome="ok")
    assert sample(edge, "llmedge_upstream_request_duration_seconds_count", **labels) == 1.0
    assert sample(edge, "llmedge_upstream_request_duration_seconds_sum",
                  **labels) == pytest.approx(2.0)


def test_duration_through_the_harness_matches_the_clock(toml):
    edge = mock_edge(toml, "latency = 2\n")
    before = edge.reactor.seconds()
    assert edge.request("POST", ROUTE, CHAT).status == 200
    elapsed = edge.reactor.seconds() - before
    assert elapsed == pytest.approx(2.0, abs=0.06)
    assert sample(edge, "llmedge_http_request_duration_seconds_sum",
                  route=ROUTE) == pytest.approx(elapsed)


# -- in flight -----------------------------------------------------------------


def test_a_scrape_counts_itself_in_flight():
    assert sample(Harness(), "llmedge_http_requests_in_flight") == 1.0


def test_pending_request_is_in_flight(toml):
    edge = mock_edge(toml, "latency = 5\n")
    post(edge)
    edge.reactor.advance(1)
    assert sample(edge, "llmedge_http_requests_in_flight") == 2.0  # it and the scrape


def test_finished_request_is_no_longer_in_flight(toml):
    edge = mock_edge(toml, "latency = 5\n")
    connection = post(edge)
    edge.reactor.advance(5)
    assert connection.response().status == 200
    assert sample(edge, "llmedge_http_requests_in_flight") == 1.0


def test_abandoned_request_is_no_longer_in_flight(toml):
    edge = mock_edge(toml, "latency = 5\n")
    connection = post(edge)
    edge.reactor.advance(1)
    connection.lose()
    assert sample(edge, "llmedge_http_requests_in_flight") == 1.0


# -- bytes ---------------------------------------------------------------------


def test_body_sizes_are_the_bytes_received_and_sent():
    edge = Harness()
    body = json.dumps(CHAT).encode()
    response = edge.request("POST", ROUTE, body, {"Content-Type": "application/json"})
    assert response.status == 200
    # read both histograms from one scrape, before any scrape is counted
    text = edge.request("GET", "/metrics").body.decode()
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert found["llmedge_request_body_bytes_count"] == 1.0
    assert found["llmedge_request_body_bytes_sum"] == len(body)
    assert found["llmedge_response_body_bytes_count"] == 1.0
    assert found["llmedge_response_body_bytes_sum"] == len(response.body)


def test_streamed_body_size_is_the_bytes_of_the_events():
    edge = Harness()
    response = edge.request("POST", ROUTE, dict(CHAT, stream=True))
    assert response.complete
    text = edge.request("GET", "/metrics").body.decode()
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert found["llmedge_response_body_bytes_sum"] == len(response.body)


# -- refusals ------------------------------------------------------------------


@pytest.fixture
def guarded():
    return Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY})


def test_request_without_a_key_counts_as_missing_api_key(guarded):
    assert guarded.request("GET", "/v1/models").status == 401
    assert sample(guarded, "llmedge_auth_failures_total", reason="missing_api_key") == 1.0
    assert sample(guarded, "llmedge_auth_failures_total", reason="invalid_api_key") is None


def test_request_with_a_wrong_key_counts_as_invalid_api_key(guarded):
    for _ in range(2):
        response = guarded.request("GET", "/v1/models", headers={"x-api-key": "sk-wrong"})
        assert response.status == 401
    assert sample(guarded, "llmedge_auth_failures_total", reason="invalid_api_key") == 2.0
    assert sample(guarded, "llmedge_auth_failures_total", reason="missing_api_key") is None


def test_authenticated_request_is_not_an_auth_failure(guarded):
    assert guarded.request("GET", "/v1/models", headers={"x-api-key": KEY}).status == 200
    assert samples(guarded, "llmedge_auth_failures_total") == []


def test_rate_limited_request_is_counted_under_its_key_id():
    edge = Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY,
                    "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"})
    key_id = edge.service.keys.lookup(KEY).id
    statuses = [edge.request("GET", "/v1/models", headers={"x-api-key": KEY}).status
                for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert samples(edge, "llmedge_rate_limited_total") == [({"key": key_id}, 2.0)]
    assert KEY not in edge.request("GET", "/metrics").body.decode()


def test_rate_limited_request_without_auth_is_anonymous():
    edge = Harness({"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"})
    assert [edge.request("GET", "/v1/models").status for _ in range(2)] == [200, 429]
    assert samples(edge, "llmedge_rate_limited_total") == [({"key": "anonymous"}, 1.0)]


def test_redis_backend_errors_and_reachability_are_exported():
    # The store is never started here, so Redis never answers.
    edge = Harness({"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BACKEND": "redis"})
    assert sample(edge, "llmedge_rate_limit_backend_up") == 1.0
    assert [edge.request("GET", "/v1/models").status for _ in range(2)] == [200, 200]
    assert sample(edge, "llmedge_rate_limit_backend_errors_total") == 2.0
    assert sample(edge, "llmedge_rate_limit_backend_up") == 0.0


def test_memory_backend_has_no_backend_metrics():
    edge = Harness({"RATE_LIMIT_ENABLED": "true"})
    assert samples(edge, "llmedge_rate_limit_backend_up") == []


def test_body_refused_while_reading_is_counted_as_413():
    edge = Harness({"MAX_REQUEST_SIZE": "100"})
    connection = edge.connect()
    connection.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    assert connection.response().status == 413
    assert sample(edge, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="413") == 1.0


# -- deadlines -----------------------------------------------------------------


def test_request_past_its_deadline_counts_as_a_timeout(toml):
    edge = mock_edge(toml, "latency = 5\n", {"SERVER_TIMEOUT_SECONDS": "1"})
    assert edge.request("POST", ROUTE, CHAT).status == 504
    assert sample(edge, "llmedge_timeouts_total", route=ROUTE) == 1.0
    assert sample(edge, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="504") == 1.0


def test_timed_out_upstream_call_has_outcome_timeout(toml):
    edge = mock_edge(toml, "latency = 5\n", {"SERVER_TIMEOUT_SECONDS": "1"})
    connection = post(edge)
    edge.reactor.advance(1)
    assert connection.response().status == 504
    labels = dict(provider="mock", model="mock", outcome="timeout")
    assert sample(edge, "llmedge_upstream_request_duration_seconds_count", **labels) == 1.0
    assert sample(edge, "llmedge_upstream_request_duration_seconds_sum",
                  **labels) == pytest.approx(1.0)


def test_stream_cut_by_its_deadline_counts_as_a_timeout(toml):
    edge = mock_edge(toml, "stream_interval = 1\n", {"SERVER_TIMEOUT_SECONDS": "3"})
    response = edge.request("POST", ROUTE, dict(CHAT, stream=True))
    assert response.status == 200 and response.complete
    assert sample(edge, "llmedge_timeouts_total", route=ROUTE) == 1.0


def test_timely_answer_is_not_a_timeout():
    edge = Harness({"SERVER_TIMEOUT_SECONDS": "1"})
    assert edge.request("POST", ROUTE, CHAT).status == 200
    assert samples(edge, "llmedge_timeouts_total") == []


# -- tokens and streams --------------------------------------------------------


def test_tokens_are_the_usage_of_the_answer():
    edge = Harness()
    usage = edge.request("POST", ROUTE, CHAT).json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert sample(edge, "llmedge_tokens_total", provider="mock", model="mock",
                  type="prompt") == usage["prompt_tokens"]
    assert sample(edge, "llmedge_tokens_total", provider="mock", model="mock",
                  type="completion") == usage["completion_tokens"]


def test_streamed_tokens_are_counted_without_include_usage():
    usage = Harness().request("POST", ROUTE, CHAT).json()["usage"]
    edge = Harness()
    response = edge.request("POST", ROUTE, dict(CHAT, stream=True))
    assert response.complete
    assert b'"usage"' not in response.body  # the client did not ask for it
    assert sample(edge, "llmedge_tokens_total", provider="mock", model="mock",
                  type="prompt") == usage["prompt_tokens"]
    assert sample(edge, "llmedge_tokens_total", provider="mock", model="mock",
                  type="completion") == usage["completion_tokens"]


def test_time_to_first_token_is_the_clock_time_to_the_first_event(toml):
    edge = mock_edge(toml, "stream_interval = 0.5\n")
    connection = post(edge, dict(CHAT, stream=True))
    edge.reactor.advance(0.5)
    assert len(connection.response().events()) == 1
    while not connection.response().complete:
        edge.reactor.advance(0.5)
    labels = dict(provider="mock", model="mock")
    assert sample(edge, "llmedge_time_to_first_token_seconds_count", **labels) == 1.0
    assert sample(edge, "llmedge_time_to_first_token_seconds_sum",
                  **labels) == pytest.approx(0.5)


def test_answer_that_is_not_a_stream_has_no_time_to_first_token():
    edge = Harness()
    edge.request("POST", ROUTE, CHAT)
    assert samples(edge, "llmedge_time_to_first_token_seconds_count") == []


# -- model labels --------------------------------------------------------------


@pytest.fixture
def two_models(toml):
    return Harness({}, toml(
        '[models."alpha"]\ntargets = [{ provider = "mock", model = "mock" }]\n'
        '[models."beta"]\ntargets = [{ provider = "mock", model = "mock" }]\n'))


def test_configured_model_names_are_their_own_label(two_models):
    for model in ("alpha", "beta", "beta"):
        assert two_models.request("POST", ROUTE, dict(CHAT, model=model)).status == 200
    counts = {labels["model"]: value for labels, value in
              samples(two_models, "llmedge_upstream_request_duration_seconds_count")}
    assert counts == {"alpha": 1.0, "beta": 2.0}


def test_unconfigured_model_name_folds_to_other(two_models):
    metrics = two_models.service.metrics
    assert metrics.model_label("alpha") == "alpha"
    assert metrics.model_label("unconfigured") == "other"
    assert metrics.model_label(None) == "other"


def test_unknown_model_adds_no_model_series(two_models):
    response = two_models.request("POST", ROUTE, dict(CHAT, model="gpt-unknown"))
    assert response.status == 404
    assert samples(two_models, "llmedge_upstream_request_duration_seconds_count") == []
    assert "gpt-unknown" not in two_models.request("GET", "/metrics").body.decode()


# -- disconnects ---------------------------------------------------------------


def test_client_that_disconnects_mid_request_is_counted_as_499(toml):
    edge = mock_edge(toml, "latency = 5\n")
    connection = post(edge)
    edge.reactor.advance(1)
    connection.lose()
    edge.reactor.advance(10)
    found = {labels["status"]: value
             for labels, value in samples(edge, "llmedge_http_requests_total")
             if labels["route"] == ROUTE}
    assert found == {"499": 1.0}


def test_abandoned_upstream_wait_is_upstream_time_not_overhead(toml):
    edge = mock_edge(toml, "latency = 5\n")
    connection = post(edge)
    edge.reactor.advance(1)
    connection.lose()
    labels = dict(provider="mock", model="mock", outcome="cancelled")
    assert sample(edge, "llmedge_upstream_request_duration_seconds_count", **labels) == 1.0
    assert sample(edge, "llmedge_overhead_seconds_sum", route=ROUTE) == pytest.approx(0.0)


# -- the endpoint itself -------------------------------------------------------


def test_build_info_names_the_versions():
    assert samples(Harness(), "llmedge_build_info") == [(
        {"version": __version__, "twisted": twisted.__version__,
         "python": platform.python_version()},
        1.0,
    )]


def test_metrics_page_is_prometheus_text():
    response = Harness().request("GET", "/metrics")
    assert response.header("content-type").startswith("text/plain; version=")
    assert int(response.header("content-length")) == len(response.body)


def test_metrics_can_be_turned_off():
    edge = Harness({"ENABLE_METRICS": "false"})
    assert edge.request("GET", "/metrics").status == 404
    assert edge.request("POST", ROUTE, CHAT).status == 200


def test_services_do_not_share_counters():
    first, second = Harness(), Harness()
    first.request("POST", ROUTE, CHAT)
    assert sample(first, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="200") == 1.0
    assert sample(second, "llmedge_http_requests_total", route=ROUTE, method="POST",
                  status="200") is None
    assert first.service.metrics.registry is not second.service.metrics.registry


def test_metrics_are_public_when_auth_is_on(guarded):
    assert guarded.request("GET", "/metrics").status == 200


def test_metrics_need_a_key_with_auth_health_check():
    edge = Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY, "AUTH_HEALTH_CHECK": "true"})
    response = edge.request("GET", "/metrics")
    assert response.status == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert samples(edge, "llmedge_build_info", headers={"x-api-key": KEY}) != []


# -- deployments ---------------------------------------------------------------


def test_each_attempt_is_counted_per_deployment_with_its_first_byte_time(toml):
    edge = mock_edge(toml, "latency = 2\n")
    connection = post(edge)
    edge.reactor.advance(2)
    assert connection.response().status == 200
    labels = dict(provider="mock", model="mock")
    assert sample(edge, "llmedge_deployment_attempts_total", outcome="ok", **labels) == 1.0
    assert sample(edge, "llmedge_deployment_first_byte_seconds_sum",
                  **labels) == pytest.approx(2.0)


def test_breaker_state_and_in_flight_are_shown_per_deployment(toml):
    edge = mock_edge(toml, "latency = 2\n")
    post(edge)
    labels = dict(provider="mock", model="mock")
    assert sample(edge, "llmedge_deployment_in_flight", **labels) == 1.0
    assert sample(edge, "llmedge_deployment_breaker_state", **labels) == 0.0
    edge.service.router.health.deployment("mock", "mock").breaker.trip()
    assert sample(edge, "llmedge_deployment_breaker_state", **labels) == 2.0
    edge.service.router.health.host("mock").trip()
    assert sample(edge, "llmedge_provider_cooling_down", provider="mock") == 1.0


# -- the response cache --------------------------------------------------------


def registry_value(metrics, name, **labels) -> float | None:
    """
    A sample straight from C{metrics}' registry (not the daemon's page).
    """
    return metrics.registry.get_sample_value(name, labels)


def cache_metrics(**options):
    return Metrics(["mock"], **options)


def record_cache(metrics, result):
    exchange = Exchange(started=0.0, model="mock", cache=result)
    metrics.record(Finished("POST", ROUTE, 200, 0.1, 10, None, exchange))


def test_cache_results_are_counted_by_result():
    metrics = cache_metrics()
    for result in ("hit", "hit", "miss", "bypass"):
        record_cache(metrics, result)
    counted = {result: registry_value(metrics, "llmedge_cache_requests_total", result=result)
               for result in ("hit", "miss", "bypass")}
    assert counted == {"hit": 2.0, "miss": 1.0, "bypass": 1.0}


def test_request_that_never_reached_the_cache_is_not_counted():
    metrics = cache_metrics()
    record_cache(metrics, None)
    assert [s for family in metrics.registry.collect() for s in family.samples
            if s.name == "llmedge_cache_requests_total"] == []


def test_unknown_cache_result_folds_to_other():
    metrics = cache_metrics()
    record_cache(metrics, "something else")
    assert registry_value(metrics, "llmedge_cache_requests_total", result="other") == 1.0


class Stats:
    """
    A cache store as far as the metrics see one: its C{stats()}.
    """

    def __init__(self, size=0, entries=0, evictions=0):
        self.values = {"bytes": size, "entries": entries, "evictions": evictions}

    def stats(self):
        return dict(self.values)


def cache_values(metrics):
    return tuple(registry_value(metrics, name) for name in (
        "llmedge_cache_bytes", "llmedge_cache_entries", "llmedge_cache_evictions_total"))


def test_cache_size_and_evictions_are_read_from_the_store_at_scrape():
    metrics = cache_metrics()
    store = Stats(100, 2, 0)
    metrics.watch_cache(store)
    store.values.update(bytes=300, entries=3, evictions=1)
    assert cache_values(metrics) == (300.0, 3.0, 1.0)


def test_memory_cache_is_shown_as_it_fills_and_evicts():
    store = MemoryCache(Clock(), max_bytes=2000)
    metrics = cache_metrics()
    metrics.watch_cache(store)
    for n in range(3):
        store.put(f"{n:064x}", b"x" * 800, 60)
    stats = store.stats()
    assert stats["evictions"] >= 1
    assert cache_values(metrics) == (
        float(stats["bytes"]), float(stats["entries"]), float(stats["evictions"]))


def test_cache_evictions_never_go_down_when_the_store_is_replaced():
    metrics = cache_metrics()
    metrics.watch_cache(Stats(evictions=5))
    metrics.watch_cache(Stats(10, 1, 2))
    assert cache_values(metrics) == (10.0, 1.0, 7.0)


def test_cache_metrics_appear_on_the_metrics_page_only_when_watched():
    metrics = cache_metrics()
    names = {family.name for family in metrics.registry.collect()}
    assert "llmedge_cache_bytes" not in names
    metrics.watch_cache(Stats(1, 1, 1))
    names = {family.name for family in metrics.registry.collect()}
    assert {"llmedge_cache_bytes", "llmedge_cache_entries", "llmedge_cache_evictions"} <= names


def test_with_workers_cache_values_are_written_by_refresh(tmp_path):
    metrics = cache_metrics(multiprocess_dir=str(tmp_path))
    store = Stats(100, 2, 3)
    metrics.watch_cache(store)
    assert cache_values(metrics) == (0.0, 0.0, 0.0)
    metrics.refresh()
    assert cache_values(metrics) == (100.0, 2.0, 3.0)
    store.values.update(bytes=50, entries=1, evictions=4)
    metrics.refresh()
    metrics.refresh()
    assert cache_values(metrics) == (50.0, 1.0, 4.0)


def test_with_workers_cache_refresh_survives_a_health_watch(tmp_path):
    metrics = cache_metrics(multiprocess_dir=str(tmp_path))
    metrics.watch_cache(Stats(7, 1, 0))
    metrics.watch_health(Health(Clock()))
    metrics.refresh()
    assert registry_value(metrics, "llmedge_cache_bytes") == 7.0


# -- one process, without locks ------------------------------------------------


def attempt(outcome, ms=12.5, provider="mock", model="mock"):
    return {"provider": provider, "model": model, "outcome": outcome, "ms": ms}


#: Requests that take every branch of L{Metrics.record}.
ENDED = [
    Finished("POST", ROUTE, 200, 0.25, 900, "k1", Exchange(
        started=0.0, request_bytes=120, model="mock", provider="mock", upstream_seconds=0.2,
        outcome="ok", prompt_tokens=9, completion_tokens=4, cache="miss",
        attempts=[attempt("error", 3.0), attempt("ok")])),
    Finished("POST", ROUTE, 200, 1.5, 70_000, None, Exchange(
        started=0.0, request_bytes=300, model="unconfigured", provider="mock",
        upstream_seconds=1.4, first_token_seconds=0.01, outcome="ok", stream=True,
        completion_tokens=30, cache="hit", attempts=[attempt("ok", 10.0)])),
    Finished("GET", "/v1/models", 401, 0.0001, 80, None, Exchange(
        started=0.0, error_code="invalid_api_key")),
    Finished("GET", "/v1/models", 429, 0.0002, 90, "k2", Exchange(started=0.0)),
    Finished("GET", "/v1/models", 429, 0.0002, 90, None, Exchange(started=0.0)),
    Finished("BREW", "other", 404, 0.001, 60, None, Exchange(started=0.0)),
    Finished("POST", ROUTE, 504, 30.0, 100, None, Exchange(
        started=0.0, model="mock", provider="mock", upstream_seconds=30.0,
        outcome="timeout", error_code="timeout", cache="unheard-of")),
]


def exposition_after(metrics) -> str:
    """
    C{metrics}' page after the requests of L{ENDED}, two refusals and a
    few connections.
    """
    for done in ENDED:
        metrics.record(done)
    metrics.refused("bad_request")
    metrics.refused("unheard-of")
    metrics.open_connections.inc(3)
    metrics.open_connections.dec()
    metrics.in_flight.inc()
    return generate_latest(metrics.registry).decode()


def now() -> float:
    """
    The wall clock of the C{_created} series, fixed.
    """
    return 1_700_000_000.5


def test_one_process_shows_what_prometheus_clients_metrics_show(monkeypatch):
    monkeypatch.setattr(client_metrics, "time", SimpleNamespace(time=now))
    client = exposition_after(Metrics(["mock"], families=Client))
    fast = exposition_after(Metrics(["mock"], families=lambda r: LockFree(r, now=now)))
    assert 'llmedge_tokens_total{model="other",provider="mock",type="completion"} 30.0' in fast
    assert fast == client


def test_one_process_counts_without_locks():
    metrics = Metrics(["mock"])
    assert isinstance(metrics.in_flight, FastGauge)
    metrics.record(ENDED[0])
    assert registry_value(metrics, "llmedge_http_requests_total",
                          route=ROUTE, method="POST", status="200") == 1.0


def test_with_workers_the_metrics_are_prometheus_clients(tmp_path):
    metrics = Metrics(["mock"], multiprocess_dir=str(tmp_path))
    assert isinstance(metrics.in_flight, Gauge)
    metrics.record(ENDED[0])
    assert registry_value(metrics, "llmedge_http_requests_total",
                          route=ROUTE, method="POST", status="200") == 1.0
