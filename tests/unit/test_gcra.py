# -*- test-case-name: tests.unit.test_gcra -*-
"""
Tests for L{llmedge.limits.gcra}: the GCRA decision and the header formats.

Most tests use C{Limit(60, 10)}: one request a second, ten at once, so the
expected numbers can be read off directly.
"""

import math

import pytest

from llmedge.limits.gcra import Limit, decide, format_duration, retry_after_header

ONE_A_SECOND = Limit(per_minute=60, burst=10)


def drain(limit, now=0.0, tat=None):
    """
    Make requests at C{now} until one is denied; return the allowed
    decisions and the denial.
    """
    allowed = []
    while True:
        decision = decide(tat, now, limit)
        if not decision.allowed:
            return allowed, decision
        allowed.append(decision)
        tat = decision.tat


def test_limit_interval_is_seconds_between_steady_requests():
    assert Limit(per_minute=120, burst=5).interval == 0.5


def test_limit_capacity_is_interval_times_burst():
    assert Limit(per_minute=120, burst=5).capacity_seconds == 2.5


@pytest.mark.parametrize(
    "per_minute, burst", [(0, 1), (1, 0), (-5, 10), (10, -1), (1.5, 2), (True, 2)]
)
def test_limit_rejects_values_that_are_not_positive_integers(per_minute, burst):
    with pytest.raises(ValueError):
        Limit(per_minute=per_minute, burst=burst)


def test_fresh_key_gets_whole_burst_at_once():
    allowed, denied = drain(ONE_A_SECOND)
    assert len(allowed) == 10
    assert not denied.allowed


def test_remaining_counts_down_through_the_burst():
    allowed, _ = drain(ONE_A_SECOND)
    assert [d.remaining for d in allowed] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_denial_reports_nothing_remaining():
    _, denied = drain(ONE_A_SECOND)
    assert denied.remaining == 0


def test_allowed_request_has_no_retry_after():
    assert decide(None, 0.0, ONE_A_SECOND).retry_after == 0.0


def test_retry_after_is_time_until_next_refill():
    allowed, denied = drain(ONE_A_SECOND)
    assert denied.retry_after == pytest.approx(1.0)
    later = decide(allowed[-1].tat, 0.25, ONE_A_SECOND)
    assert later.retry_after == pytest.approx(0.75)


def test_reset_after_is_time_until_bucket_is_full():
    allowed, denied = drain(ONE_A_SECOND)
    assert allowed[0].reset_after == pytest.approx(1.0)
    assert allowed[-1].reset_after == pytest.approx(10.0)
    assert denied.reset_after == pytest.approx(10.0)


def test_bucket_is_full_once_reset_after_has_passed():
    allowed, _ = drain(ONE_A_SECOND)
    after = decide(allowed[-1].tat, allowed[-1].reset_after, ONE_A_SECOND)
    assert after.remaining == ONE_A_SECOND.burst - 1


def test_one_request_refills_per_interval():
    allowed, _ = drain(ONE_A_SECOND)
    refilled, denied = drain(ONE_A_SECOND, now=1.0, tat=allowed[-1].tat)
    assert len(refilled) == 1
    assert denied.retry_after == pytest.approx(1.0)


def test_request_just_before_refill_is_denied():
    allowed, _ = drain(ONE_A_SECOND)
    assert not decide(allowed[-1].tat, 0.999, ONE_A_SECOND).allowed


def test_denial_returns_old_tat_unchanged():
    allowed, denied = drain(ONE_A_SECOND)
    assert denied.tat == allowed[-1].tat


def test_repeated_denials_do_not_push_retry_later():
    allowed, _ = drain(ONE_A_SECOND)
    tat = allowed[-1].tat
    for _ in range(5):
        denied = decide(tat, 0.5, ONE_A_SECOND)
        tat = denied.tat
    assert denied.retry_after == pytest.approx(0.5)


def test_cost_consumes_several_requests():
    decision = decide(None, 0.0, ONE_A_SECOND, cost=4)
    assert (decision.remaining, decision.reset_after) == (6, pytest.approx(4.0))


def test_costly_denial_waits_for_enough_refill():
    first = decide(None, 0.0, ONE_A_SECOND, cost=4)
    denied = decide(first.tat, 0.0, ONE_A_SECOND, cost=7)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(1.0)


def test_costly_denial_reports_what_smaller_requests_could_use():
    first = decide(None, 0.0, ONE_A_SECOND, cost=4)
    denied = decide(first.tat, 0.0, ONE_A_SECOND, cost=7)
    assert denied.remaining == 6


def test_cost_equal_to_burst_is_allowed_on_a_full_bucket():
    assert decide(None, 0.0, ONE_A_SECOND, cost=10).allowed


@pytest.mark.parametrize("cost", [0, -1, 11, 1.5])
def test_cost_outside_one_to_burst_is_an_error(cost):
    with pytest.raises(ValueError):
        decide(None, 0.0, ONE_A_SECOND, cost=cost)


def test_long_idle_fully_refills():
    allowed, _ = drain(ONE_A_SECOND)
    refilled, _ = drain(ONE_A_SECOND, now=3600.0, tat=allowed[-1].tat)
    assert len(refilled) == 10


def test_expired_tat_decides_like_unknown_key():
    assert decide(5.0, 100.0, ONE_A_SECOND) == decide(None, 100.0, ONE_A_SECOND)


def count_allowed(limit, origin=0.0, minutes=10, step_ms=10):
    """
    Count the requests allowed when one arrives every C{step_ms} for
    C{minutes}, starting at C{origin}.
    """
    tat = None
    allowed = 0
    for i in range(minutes * 60_000 // step_ms):
        decision = decide(tat, origin + i * step_ms / 1000, limit)
        if decision.allowed:
            allowed += 1
            tat = decision.tat
    return allowed


@pytest.mark.parametrize(
    "limit", [ONE_A_SECOND, Limit(1000, 100), Limit(7, 3), Limit(6000, 1)], ids=repr
)
def test_sustained_traffic_gets_burst_plus_rate(limit):
    ceiling = limit.burst + limit.per_minute * 10
    assert ceiling - 1 <= count_allowed(limit) <= ceiling


def test_sustained_traffic_gets_burst_plus_rate_at_epoch_timestamps():
    """
    Real clocks give epoch seconds, where floats are coarse (about 2.4e-7 s
    apart); the count must not drift there either.
    """
    limit = Limit(1000, 100)
    ceiling = limit.burst + limit.per_minute * 10
    assert ceiling - 1 <= count_allowed(limit, origin=1_700_000_000.0) <= ceiling


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (-3.0, "0s"),
        (1e-12, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (0.07, "70ms"),
        (0.25, "250ms"),
        (0.999, "999ms"),
        (0.9991, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (1.25, "1.25s"),
        (12.345, "12.345s"),
        (59.999, "59.999s"),
        (59.9994, "1m0s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3599.9999, "1h0m0s"),
        (3723, "1h2m3s"),
        (86400.25, "24h0m0.25s"),
    ],
)
def test_format_duration_rounds_up_to_ms_in_openai_style(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_format_duration_rejects_non_finite(seconds):
    with pytest.raises(ValueError):
        format_duration(seconds)


@pytest.mark.parametrize(
    "seconds, header",
    [(0, 1), (0.001, 1), (1.0, 1), (1.2, 2), (2.0000000001, 2), (59.5, 60)],
)
def test_retry_after_header_is_whole_seconds_at_least_one(seconds, header):
    assert retry_after_header(seconds) == header
