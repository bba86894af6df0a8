# -*- test-case-name: tests.unit.test_cache_flight -*-
"""
Single flight: identical requests that arrive while the first one is still
waiting on its provider wait for that one's answer instead of asking too.

Without it a cache only helps once an answer is stored: a burst of the same
prompt (a retrying client, a fan-out, a page load) costs one upstream call
per request, all paid for, all answered the same. With it the first request
(the leader) goes upstream, and the others (followers) are answered from
the entry it lands.

Everything here is bounded, because peers control how many requests arrive
and a provider controls how long the leader waits:

  - a follower waits at most C{wait} seconds, then goes upstream itself;
  - a flight takes at most C{max_followers}; past that, a follower is told
    at once to go upstream;
  - a flight older than C{wait} counts as absent, and is dropped when it
    reaches that age, so a leader that never lands (a bug, a lost call)
    holds its key and its memory for C{wait} seconds, not forever.

Nothing here reads or writes the store: the leader stores its answer and
hands the same bytes to L{Flight.land}, so a follower costs no store read.
A follower that is told L{None} (the leader failed, its answer was not
storable, the wait ran out, the flight was full) goes upstream; it does not
lead, so a failing upstream is not retried by each follower in turn.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Flight:
    """
    One request in the air, and the identical requests waiting on it.

    Made by L{Flights.take_off}; the leader must call L{land} when its
    answer is done, whatever became of it.
    """

    def __init__(self, flights: Flights | None, key: str, started: float) -> None:
        self._flights = flights
        self.key = key
        self.started = started
        #: Each waiting follower's Deferred, and the timer that ends its wait.
        self._followers: dict[Deferred, IDelayedCall] = {}
        #: Ends the flight's life in L{Flights} if the leader never lands.
        self._expiry: IDelayedCall | None = None
        self.landed = False

    def __len__(self) -> int:
        """
        How many followers wait on this flight.
        """
        return len(self._followers)

    def land(self, entry: bytes | None) -> None:
        """
        The leader's answer is done: wake every follower with C{entry} (the
        stored bytes, or L{None} when nothing was stored) and let the next
        identical request lead.

        Idempotent, so that a leader may call it from both its success and
        its cleanup paths without counting which ran.
        """
        if self.landed:
            return
        self.landed = True
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if self._flights is not None:
            self._flights._remove(self)
        followers, self._followers = self._followers, {}
        for follower, timer in followers.items():
            if timer.active():
                timer.cancel()
            follower.callback(entry)

    def _join(self, clock: IReactorTime, wait: float) -> Deferred[bytes | None]:
        """
        A new follower: a Deferred fired by L{land}, by its wait running
        out (with L{None}), or cancelled by its client leaving.
        """
        follower: Deferred[bytes | None] = Deferred(self._leave)
        self._followers[follower] = clock.callLater(wait, self._give_up, follower)
        return follower

    def _give_up(self, follower: Deferred) -> None:
        """
        A follower waited long enough: it goes upstream itself.
        """
        if self._followers.pop(follower, None) is not None:
            follower.callback(None)

    def _leave(self, follower: Deferred) -> None:
        """
        A follower's client left (its Deferred was cancelled): forget it,
        so neither L{land} nor its timer fires it again.
        """
        timer = self._followers.pop(follower, None)
        if timer is not None and timer.active():
            timer.cancel()


class Flights:
    """
    The flights in the air, one per cache key.

    @param clock: whose time bounds every wait.
    @param wait: how long a follower waits for its leader, and how long a
        flight counts as in the air; C{0} turns single flight off. A
        public attribute: a reload sets it, and flights and followers
        from then on use the new value.
    @param max_followers: how many followers one flight takes.
    """

    def __init__(self, clock: IReactorTime, wait: float, max_followers: int = 1000) -> None:
        self._clock = clock
        self.wait = wait
        self._max_followers = max_followers
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        """
        How many flights are in the air.
        """
        return len(self._flights)

    def follow(self, key: str) -> Deferred[bytes | None] | None:
        """
        Wait on the flight for C{key}, if one is in the air.

        @return: L{None} when no flight is in the air for C{key} (the
            caller then leads: L{take_off}); else a L{Deferred} firing with
            the bytes the leader landed, or L{None} when the caller should
            go upstream itself (nothing landed, the wait ran out, the flight
            was full).
        """
        flight = self._flights.get(key)
        if flight is None or self._clock.seconds() - flight.started >= self.wait:
            return None
        if len(flight) >= self._max_followers:
            return succeed(None)
        return flight._join(self._clock, self.wait)

    def take_off(self, key: str) -> Flight:
        """
        Lead the flight for C{key}: identical requests follow it until it
        lands or grows older than C{wait}.

        A flight already there for C{key} is replaced (L{follow} said it
        was absent, because it was too old): its own followers still wait
        for it or for their timers.
        """
        now = self._clock.seconds()
        if self.wait <= 0:
            return Flight(None, key, now)
        flight = Flight(self, key, now)
        flight._expiry = self._clock.callLater(self.wait, self._expire, flight)
        old = self._flights.get(key)
        self._flights[key] = flight
        if old is not None and old._expiry is not None and old._expiry.active():
            old._expiry.cancel()
            old._expiry = None
        return flight

    def _expire(self, flight: Flight) -> None:
        """
        A flight reached C{wait} without landing: it no longer holds its key.
        """
        flight._expiry = None
        self._remove(flight)

    def _remove(self, flight: Flight) -> None:
        """
        Forget C{flight}, unless another has already replaced it.
        """
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
