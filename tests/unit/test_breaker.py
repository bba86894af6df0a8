"""
The circuit breaker: closed, open after consecutive failures, half-open
with one probe after the cooldown, closed again by the probe's success.
"""

from twisted.internet.task import Clock

from llmedge.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


def breaker(threshold=3, cooldown=10.0):
    clock = Clock()
    return clock, CircuitBreaker(clock, threshold, cooldown)


def test_a_new_breaker_is_closed_and_ready():
    _, b = breaker()
    assert (b.state, b.ready()) == (CLOSED, True)


def test_it_opens_after_threshold_consecutive_failures_only():
    _, b = breaker(threshold=3)
    b.failed()
    b.failed()
    assert b.state == CLOSED
    b.failed()
    assert (b.state, b.ready()) == (OPEN, False)


def test_a_success_resets_the_count():
    _, b = breaker(threshold=2)
    b.failed()
    b.succeeded()
    b.failed()
    assert b.state == CLOSED


def test_after_the_cooldown_one_probe_is_let_through():
    clock, b = breaker(threshold=1, cooldown=10)
    b.failed()
    clock.advance(9.9)
    assert b.state == OPEN
    clock.advance(0.1)
    assert (b.state, b.ready()) == (HALF_OPEN, True)
    assert b.begin() is True
    assert b.ready() is False  # the probe is taken
    assert b.begin() is False


def test_the_probe_s_success_closes_it():
    clock, b = breaker(threshold=1)
    b.failed()
    clock.advance(10)
    b.begin()
    b.succeeded()
    assert (b.state, b.ready()) == (CLOSED, True)


def test_the_probe_s_failure_opens_it_for_another_cooldown():
    clock, b = breaker(threshold=3)
    for _ in range(3):
        b.failed()
    clock.advance(10)
    b.begin()
    b.failed()
    assert b.state == OPEN
    clock.advance(10)
    assert b.state == HALF_OPEN


def test_an_abandoned_probe_frees_the_probe():
    clock, b = breaker(threshold=1)
    b.failed()
    clock.advance(10)
    b.begin()
    b.abandoned()
    assert b.ready() and b.state == HALF_OPEN


def test_trip_opens_at_once():
    _, b = breaker(threshold=5)
    b.trip()
    assert b.state == OPEN


def test_a_cooldown_of_zero_never_opens():
    _, b = breaker(threshold=1, cooldown=0)
    b.failed()
    b.trip()
    assert b.state == CLOSED
