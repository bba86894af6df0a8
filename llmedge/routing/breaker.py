# -*- test-case-name: tests.unit.test_breaker -*-
"""
L{CircuitBreaker}: stop sending requests where they keep failing, and find
out, with one request, when they would succeed again.

A breaker is I{closed} while what it guards works. C{threshold}
consecutive failures I{open} it: for C{cooldown} seconds nothing is sent
(the caller tries elsewhere, or last). Then it is I{half-open}: one request,
the probe, is let through; its success closes the breaker, its failure
opens it for another C{cooldown}. Only one probe at a time, so a
deployment that is still down costs one request per cooldown, not a burst.

Time is read from an injected clock and nothing is scheduled: the state is
worked out when asked (as Synapse's rate limiter meters, with no periodic
process), so an idle breaker costs nothing.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"

#: The number each state is shown as in C{llmedge_deployment_breaker_state}.
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """
    @param threshold: consecutive failures that open the breaker.
    @param cooldown: seconds it stays open before a probe (0: it never
        opens).
    """

    def __init__(self, clock: IReactorTime, threshold: int, cooldown: float) -> None:
        self._clock = clock
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """
        L{CLOSED}, L{OPEN}, or L{HALF_OPEN} once the cooldown is over.
        """
        if self._open_until is None:
            return CLOSED
        if self._clock.seconds() < self._open_until:
            return OPEN
        return HALF_OPEN

    def ready(self) -> bool:
        """
        Whether a request may be sent now without asking for an exception:
        closed, or half-open with its probe free.
        """
        state = self.state
        return state == CLOSED or (state == HALF_OPEN and not self._probing)

    def begin(self) -> bool:
        """
        A request is sent through the breaker; L{True} when it is the
        half-open breaker's probe (its end must be reported).
        """
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def failed(self) -> None:
        """
        One more consecutive failure; the breaker opens at the threshold,
        and at once when a probe fails.
        """
        self._failures += 1
        probe, self._probing = self._probing, False
        if self.cooldown > 0 and (probe or self._open_until is not None
                                  or self._failures >= self.threshold):
            self._open_until = self._clock.seconds() + self.cooldown

    def trip(self) -> None:
        """
        Open now, whatever the count: a failure that is certain to repeat
        (a host that refuses connections).
        """
        self._failures = max(self._failures, self.threshold)
        self._probing = False
        if self.cooldown > 0:
            self._open_until = self._clock.seconds() + self.cooldown

    def abandoned(self) -> None:
        """
        A probe ended without a verdict (the client left): free the probe.
        """
        self._probing = False
