"""
The lock-free metric families of one process (L{llmedge.observe.fast_metrics})
show on C{/metrics} exactly what prometheus_client's own metrics show for
the same observations: each test makes the same families both ways
(L{LockFree} and L{Client}), observes the same values, and compares the
two expositions byte for byte.
"""

import itertools
import math
from types import SimpleNamespace

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from llmedge.observe.fast_metrics import Client, LockFree

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def clock():
    """
    A wall clock that moves a second (and a bit) each time it is read, so
    that every C{_created} series has a time of its own.
    """
    ticks = itertools.count()
    return lambda: 1_700_000_000.25 + next(ticks) * 1.125


@pytest.fixture
def expositions(monkeypatch):
    """
    C{expositions(observe)}: call C{observe} with L{Client} families, then
    with L{LockFree} ones, each in a registry of its own and with a clock
    that starts afresh; return both registries' text expositions.
    """

    def both(observe, exposition=generate_latest):
        client, fast = CollectorRegistry(), CollectorRegistry()
        monkeypatch.setattr(prometheus_client.metrics, "time", SimpleNamespace(time=clock()))
        observe(Client(client))
        observe(LockFree(fast, now=clock()))
        return exposition(client).decode(), exposition(fast).decode()

    return both


def fast_text(observe) -> str:
    registry = CollectorRegistry()
    observe(LockFree(registry, now=clock()))
    return generate_latest(registry).decode()


# -- counters ------------------------------------------------------------------


def count_requests(families):
    requests = families.counter("requests", "Requests.", ["route", "status"])
    for labels in [("/a", "200"), ("/b", "404"), ("/a", "200"), ("/a", "500")]:
        requests.inc(labels)
    requests.inc(("/b", "404"), 5)


def test_counter_is_shown_as_prometheus_client_shows_it(expositions):
    client, fast = expositions(count_requests)
    assert 'requests_total{route="/a",status="200"} 2.0' in fast
    assert fast == client


def test_counter_is_shown_as_prometheus_client_shows_it_in_openmetrics(expositions):
    client, fast = expositions(count_requests, openmetrics_latest)
    assert "# EOF" in fast
    assert fast == client


def test_counter_series_appears_only_once_its_labels_are_observed(expositions):
    client, fast = expositions(lambda f: f.counter("refused", "Refused.", ["reason"]))
    assert fast == "# HELP refused_total Refused.\n# TYPE refused_total counter\n"
    assert fast == client


def test_counter_without_labels_is_shown_before_any_increment(expositions):
    client, fast = expositions(lambda f: f.counter("errors", "Errors.", []))
    assert "errors_total 0.0\n" in fast
    assert fast == client


def test_counter_refuses_a_negative_increment():
    registry = CollectorRegistry()
    tokens = LockFree(registry).counter("tokens", "Tokens.", ["type"])
    tokens.inc(("prompt",), 3)
    with pytest.raises(ValueError):
        tokens.inc(("prompt",), -1)
    assert registry.get_sample_value("tokens_total", {"type": "prompt"}) == 3.0


def test_label_values_that_are_not_strings_count_as_their_strings(expositions):
    def observe(families):
        statuses = families.counter("statuses", "Statuses.", ["status"])
        statuses.inc((200,))
        statuses.inc(("200",))
        statuses.inc((200,))

    client, fast = expositions(observe)
    assert 'statuses_total{status="200"} 3.0' in fast
    assert fast == client


def test_wrong_number_of_label_values_is_refused():
    counter = LockFree(CollectorRegistry()).counter("requests", "Requests.", ["route"])
    with pytest.raises(ValueError):
        counter.inc(("/a", "extra"))


# -- histograms ----------------------------------------------------------------


def observe_durations(families):
    durations = families.histogram("duration", "Durations.", ["route"], BUCKETS)
    values = [0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 1.0, 3, 10.0, 11.5, 1e9, math.inf]
    for n, value in enumerate(values):
        durations.observe(("/a" if n % 3 else "/b",), value)


def test_histogram_is_shown_as_prometheus_client_shows_it(expositions):
    client, fast = expositions(observe_durations)
    assert 'duration_bucket{le="+Inf",route="/a"} 8.0' in fast
    assert fast == client


def test_histogram_is_shown_as_prometheus_client_shows_it_in_openmetrics(expositions):
    client, fast = expositions(observe_durations, openmetrics_latest)
    assert "duration_created" in fast
    assert fast == client


def test_observation_on_a_bound_counts_in_that_bucket():
    def observe(families):
        families.histogram("duration", "Durations.", [], BUCKETS).observe((), 0.01)

    text = fast_text(observe)
    assert 'duration_bucket{le="0.001"} 0.0' in text
    assert 'duration_bucket{le="0.01"} 1.0' in text


def test_histogram_without_labels_is_shown_before_any_observation(expositions):
    client, fast = expositions(
        lambda f: f.histogram("body_bytes", "Sizes.", [], (256, 1024, 4096)))
    assert 'body_bytes_bucket{le="256.0"} 0.0' in fast
    assert fast == client


def test_histogram_series_appears_only_once_its_labels_are_observed(expositions):
    client, fast = expositions(
        lambda f: f.histogram("duration", "Durations.", ["route"], BUCKETS))
    assert "duration_bucket" not in fast
    assert fast == client


def test_nan_counts_in_the_sum_and_in_no_bucket(expositions):
    def observe(families):
        durations = families.histogram("duration", "Durations.", [], BUCKETS)
        durations.observe((), 0.5)
        durations.observe((), math.nan)

    client, fast = expositions(observe)
    assert "duration_count 1.0" in fast
    assert "duration_sum NaN" in fast
    assert fast == client


def test_negative_buckets_are_refused():
    with pytest.raises(ValueError):
        LockFree(CollectorRegistry()).histogram("delta", "Deltas.", [], (-1.0, 0.0, 1.0))


def test_unsorted_buckets_are_refused():
    with pytest.raises(ValueError):
        LockFree(CollectorRegistry()).histogram("size", "Sizes.", [], (10.0, 1.0))


# -- gauges --------------------------------------------------------------------


def test_gauge_is_shown_as_prometheus_client_shows_it(expositions):
    def observe(families):
        open_now = families.gauge("open", "Open now.", "livesum")
        open_now.inc()
        open_now.inc(3)
        open_now.dec()
        unread = families.gauge("unread", "Unread now.", "livesum")
        unread.set(7)
        unread.dec(2)

    client, fast = expositions(observe)
    assert "open 3.0\n" in fast and "unread 5.0\n" in fast
    assert fast == client


# -- created, order, registration ------------------------------------------------


def test_created_is_the_time_a_series_was_first_observed():
    def observe(families):
        requests = families.counter("requests", "Requests.", ["route"])
        requests.inc(("/a",))
        requests.inc(("/b",))
        requests.inc(("/a",))

    text = fast_text(observe)
    assert 'requests_created{route="/a"} 1.70000000025e+09' in text
    assert 'requests_created{route="/b"} 1.700000001375e+09' in text


def test_created_series_are_hidden_when_prometheus_client_hides_them(expositions):
    prometheus_client.metrics.disable_created_metrics()
    try:
        client, fast = expositions(lambda f: (count_requests(f), observe_durations(f)))
    finally:
        prometheus_client.metrics.enable_created_metrics()
    assert "_created" not in fast
    assert fast == client


def test_families_are_shown_in_the_order_they_were_made(expositions):
    def observe(families):
        families.gauge("in_flight", "In flight.", "livesum").inc()
        observe_durations(families)
        count_requests(families)

    client, fast = expositions(observe)
    assert fast.index("in_flight") < fast.index("duration") < fast.index("requests")
    assert fast == client


def test_a_name_taken_in_the_registry_is_refused():
    registry = CollectorRegistry()
    families = LockFree(registry)
    families.histogram("duration", "Durations.", ["route"], BUCKETS)
    with pytest.raises(ValueError):
        families.counter("duration_count", "Clashes with the histogram's count.", [])


def test_a_scrape_is_a_snapshot():
    registry = CollectorRegistry()
    durations = LockFree(registry).histogram("duration", "Durations.", ["route"], BUCKETS)
    durations.observe(("/a",), 0.5)
    [family] = list(registry.collect())
    durations.observe(("/a",), 0.5)
    durations.observe(("/b",), 0.5)
    counts = [s.value for s in family.samples if s.name == "duration_count"]
    assert counts == [1.0]
    assert registry.get_sample_value("duration_count", {"route": "/a"}) == 2.0
