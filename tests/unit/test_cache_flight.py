"""
Single flight (L{llmedge.cache.flight}): identical requests wait for the
first one's answer, for a bounded time, in bounded numbers, on a fake clock.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from llmedge.cache.flight import Flights

KEY = "k" * 64
OTHER = "o" * 64
ENTRY = b"entry bytes"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def flights(clock):
    return Flights(clock, wait=30)


def results(deferred):
    """
    What C{deferred} fired with so far: C{[]} while it has not fired.
    """
    fired = []
    deferred.addBoth(fired.append)
    return fired


# -- leading -------------------------------------------------------------------


def test_first_request_leads(flights):
    assert flights.follow(KEY) is None


def test_identical_request_follows_the_leader(flights):
    flights.take_off(KEY)
    assert flights.follow(KEY) is not None


def test_request_with_another_key_leads_its_own_flight(flights):
    flights.take_off(KEY)
    assert flights.follow(OTHER) is None


# -- landing -------------------------------------------------------------------


def test_followers_get_the_entry_the_leader_landed(flights):
    flight = flights.take_off(KEY)
    waiting = [results(flights.follow(KEY)) for _ in range(3)]
    flight.land(ENTRY)
    assert waiting == [[ENTRY]] * 3


def test_followers_get_none_when_the_leader_landed_nothing(flights):
    flight = flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    flight.land(None)
    assert waiting == [None]


def test_followers_wait_until_the_leader_lands(flights, clock):
    flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    clock.advance(29)
    assert waiting == []


def test_landing_lets_the_next_request_lead(flights):
    flights.take_off(KEY).land(ENTRY)
    assert flights.follow(KEY) is None
    assert len(flights) == 0


def test_landing_twice_wakes_followers_once(flights):
    flight = flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    flight.land(ENTRY)
    flight.land(b"something else")
    assert waiting == [ENTRY]


def test_landing_leaves_no_timers(flights, clock):
    flight = flights.take_off(KEY)
    flights.follow(KEY)
    flights.follow(KEY)
    flight.land(ENTRY)
    assert clock.getDelayedCalls() == []


# -- bounds --------------------------------------------------------------------


def test_follower_gives_up_after_wait_seconds(flights, clock):
    flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    clock.advance(30)
    assert waiting == [None]


def test_follower_that_gave_up_is_not_woken_by_the_landing(flights, clock):
    flight = flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    clock.advance(30)
    flight.land(ENTRY)
    assert waiting == [None]


def test_wait_is_counted_from_each_followers_arrival(flights, clock):
    flights.take_off(KEY)
    clock.advance(10)
    waiting = results(flights.follow(KEY))
    clock.advance(29)
    assert waiting == []
    clock.advance(1)
    assert waiting == [None]


def test_full_flight_sends_the_next_follower_upstream_at_once(clock):
    flights = Flights(clock, wait=30, max_followers=2)
    flight = flights.take_off(KEY)
    first, second = results(flights.follow(KEY)), results(flights.follow(KEY))
    assert results(flights.follow(KEY)) == [None]
    flight.land(ENTRY)
    assert first == second == [ENTRY]


def test_full_flight_takes_followers_again_as_they_leave(clock):
    flights = Flights(clock, wait=30, max_followers=1)
    flights.take_off(KEY)
    flights.follow(KEY).cancel()
    assert results(flights.follow(KEY)) == []


def test_flight_older_than_wait_counts_as_absent(flights, clock):
    flights.take_off(KEY)
    clock.advance(30)
    assert flights.follow(KEY) is None


def test_leader_that_never_lands_releases_its_key(flights, clock):
    flights.take_off(KEY)
    clock.advance(30)
    assert len(flights) == 0
    assert clock.getDelayedCalls() == []


def test_stale_flight_is_replaced_by_a_new_leader(flights, clock):
    stale = flights.take_off(KEY)
    clock.advance(30)
    fresh = flights.take_off(KEY)
    waiting = results(flights.follow(KEY))
    stale.land(b"stale")
    assert waiting == []
    fresh.land(ENTRY)
    assert waiting == [ENTRY]


def test_replaced_flight_still_wakes_its_own_followers(flights, clock):
    stale = flights.take_off(KEY)
    clock.advance(20)
    early = results(flights.follow(KEY))
    clock.advance(10)
    fresh = flights.take_off(KEY)
    stale.land(b"stale")
    assert early == [b"stale"]
    assert flights.follow(KEY) is not None
    fresh.land(ENTRY)


def test_new_leader_over_a_flight_in_the_air_leaves_no_timers(flights, clock):
    flights.take_off(KEY)
    flights.take_off(KEY).land(None)
    assert clock.getDelayedCalls() == []
    assert len(flights) == 0


# -- clients leaving -----------------------------------------------------------


def test_cancelled_follower_fails_with_cancelled_only(flights, clock):
    flights.take_off(KEY)
    waiting = flights.follow(KEY)
    fired = results(waiting)
    waiting.cancel()
    clock.advance(30)
    assert len(fired) == 1
    assert fired[0].check(CancelledError)


def test_cancelled_follower_is_not_woken_by_the_landing(flights):
    flight = flights.take_off(KEY)
    waiting = flights.follow(KEY)
    waiting.addErrback(lambda failure: failure.trap(CancelledError))
    waiting.cancel()
    flight.land(ENTRY)
    assert len(flight) == 0


def test_cancelled_follower_leaves_only_the_flights_timer(flights, clock):
    flights.take_off(KEY)
    waiting = flights.follow(KEY)
    waiting.addErrback(lambda failure: failure.trap(CancelledError))
    waiting.cancel()
    assert len(clock.getDelayedCalls()) == 1


def test_other_followers_still_get_the_entry_after_one_left(flights):
    flight = flights.take_off(KEY)
    leaving, staying = flights.follow(KEY), results(flights.follow(KEY))
    leaving.addErrback(lambda failure: failure.trap(CancelledError))
    leaving.cancel()
    flight.land(ENTRY)
    assert staying == [ENTRY]


# -- off -----------------------------------------------------------------------


def test_zero_wait_never_follows(clock):
    flights = Flights(clock, wait=0)
    flights.take_off(KEY)
    assert flights.follow(KEY) is None


def test_zero_wait_flight_lands_harmlessly_and_sets_no_timer(clock):
    flights = Flights(clock, wait=0)
    flight = flights.take_off(KEY)
    flight.land(ENTRY)
    assert clock.getDelayedCalls() == []
    assert len(flights) == 0
