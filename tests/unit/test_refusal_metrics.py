# -*- test-case-name: tests.unit.test_refusal_metrics -*-
"""
What never becomes a request is still seen: refusals made while reading
(malformed HTTP, timeouts, too many connections) are counted by reason,
open connections are a gauge, and refused connections are logged at most
once a minute.
"""

from prometheus_client import generate_latest
from twisted.logger import capturedLogs

from tests.unit.support import Harness


def scrape(h) -> str:
    return generate_latest(h.service.metrics.registry).decode()


def test_malformed_request_is_counted_by_reason():
    h = Harness()
    connection = h.connect()
    connection.send(b"GARBAGE\r\n\r\n")
    assert connection.response().status == 400
    assert 'llmedge_refused_total{reason="bad_request"} 1.0' in scrape(h)


def test_open_connections_gauge():
    h = Harness()
    first, second = h.connect(), h.connect()
    assert "llmedge_open_connections 2.0" in scrape(h)
    first.lose()
    assert "llmedge_open_connections 1.0" in scrape(h)
    second.lose()
    assert "llmedge_open_connections 0.0" in scrape(h)


def test_connections_past_the_limit_are_counted_and_logged_once_a_minute():
    h = Harness({"SERVER_MAX_CONNECTIONS": "1"})
    h.connect()
    with capturedLogs() as events:
        for _ in range(3):
            h.connect()
        h.reactor.advance(61)
        h.connect()
    assert 'llmedge_refused_total{reason="too_many_connections"} 4.0' in scrape(h)
    warnings = [e for e in events if "Refusing connections" in e.get("log_format", "")]
    assert len(warnings) == 2
    assert warnings[0]["open"] == 1


def test_http2_refusals_have_reasons_of_their_own():
    h = Harness()
    for reason in ("too_many_streams", "too_many_resets"):
        h.service.metrics.refused(reason)
    text = scrape(h)
    assert 'llmedge_refused_total{reason="too_many_streams"} 1.0' in text
    assert 'llmedge_refused_total{reason="too_many_resets"} 1.0' in text
