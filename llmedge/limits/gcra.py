# -*- test-case-name: tests.unit.test_gcra -*-
"""
The Generic Cell Rate Algorithm (GCRA), as a pure function.

A limit of C{per_minute} requests with a C{burst} lets a fresh client make
C{burst} requests at once, then one more every C{interval = 60 / per_minute}
seconds. That is a token bucket of C{burst} tokens refilled at
C{per_minute / 60} tokens a second; GCRA computes the same answers from a
single number per key, the I{theoretical arrival time} (TAT): the moment at
which the bucket would be full again if no more requests came.

It is a meter, not a periodic leak. Nothing runs between requests: no timer
per key, no sweep that tops every bucket up. Each request reads the stored
TAT, compares it with "now" and, if the request is allowed, writes back a TAT
pushed C{cost * interval} further. A request is allowed when the new TAT is
no more than C{capacity_seconds = burst * interval} ahead of now. A TAT in
the past means a full bucket, exactly as if the key had never been seen, so
a store may forget such keys at any time (that is how the memory store stays
bounded).

One float of state and one read-compare-write per decision is why the same
function serves both stores: the memory store keeps a dict of floats, and a
Redis store can run this arithmetic in one atomic server-side script, so
that many llmedge instances share a limit without a lock or a race.

The function never reads a clock: C{now} is a parameter, so tests state the
time instead of sleeping, and the stores decide which clock is authoritative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Float tolerance for "now is at or after the allowed moment". Timestamps
# are epoch seconds (about 1.7e9), where one float step is about 2.4e-7 s,
# so a nanosecond tolerance would be below the resolution of the inputs. One
# microsecond is well above rounding and far below anything a client sees.
EPSILON = 1e-6


@dataclass(frozen=True)
class Limit:
    """
    A steady rate of C{per_minute} requests, with up to C{burst} at once.
    """

    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        for name in ("per_minute", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")

    @property
    def interval(self) -> float:
        """
        Seconds between two requests at the steady rate.
        """
        return 60.0 / self.per_minute

    @property
    def capacity_seconds(self) -> float:
        """
        How far ahead of now the TAT may run: the time a full burst takes
        to refill, and the longest any key needs to be remembered.
        """
        return self.interval * self.burst


@dataclass(frozen=True)
class Decision:
    """
    The answer to one request, and the state to store for its key.

    @ivar tat: The TAT to store: the new one if allowed; if denied, the old
        one unchanged, because a refused request must not cost anything.
    @ivar remaining: Requests of cost 1 that could still be made right now
        (after this one, if it was allowed).
    @ivar retry_after: Seconds until this request would be allowed; 0.0 if
        it was.
    @ivar reset_after: Seconds until the bucket is full again (C{remaining}
        back to C{burst}), for C{x-ratelimit-reset-requests}.
    """

    allowed: bool
    tat: float | None
    remaining: int
    retry_after: float
    reset_after: float


def decide(tat: float | None, now: float, limit: Limit, cost: int = 1) -> Decision:
    """
    Decide one request of C{cost} units against C{limit} at time C{now}.

    @param tat: The key's stored TAT, or L{None} for a key never seen (or
        forgotten, which is the same thing).
    @raise ValueError: If C{cost} is below 1 or above C{limit.burst}: such a
        request could never be allowed, and denying it with a finite
        C{retry_after} would send the client into a retry loop that cannot
        succeed, so it is the caller's error to report.
    """
    check_cost(limit, cost)
    interval = limit.interval
    start = now if tat is None else max(tat, now)
    new_tat = start + cost * interval
    allow_at = new_tat - limit.capacity_seconds
    if now + EPSILON >= allow_at:
        return Decision(
            allowed=True,
            tat=new_tat,
            remaining=_remaining(new_tat, now, limit),
            retry_after=0.0,
            reset_after=max(0.0, new_tat - now),
        )
    # Denied: start > now, so tat was not None.
    return Decision(
        allowed=False,
        tat=tat,
        remaining=_remaining(start, now, limit),
        retry_after=allow_at - now,
        reset_after=max(0.0, start - now),
    )


def adjusted(tat: float | None, now: float, limit: Limit, amount: int) -> float | None:
    """
    The TAT after C{amount} more units were spent (negative: given back)
    without a decision: how a reservation is settled once the real cost is
    known (token limits reserve a request's most, then settle on what it
    used).

    A refund never makes a bucket fuller than full, and a charge is never
    refused (the request already ran). L{None} when the bucket is full.
    """
    base = now if tat is None or tat < now else tat
    if tat is None and amount < 0:
        return None
    new_tat = base + amount * limit.interval
    return new_tat if new_tat > now else None


def check_cost(limit: Limit, cost: int) -> None:
    """
    Raise C{ValueError} for a C{cost} L{decide} refuses, so that a store
    deciding elsewhere (in Redis) refuses the same costs before it asks.
    """
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be an integer >= 1, not {cost!r}")
    if cost > limit.burst:
        raise ValueError(f"cost {cost} exceeds the burst of {limit.burst}")


def _remaining(tat: float, now: float, limit: Limit) -> int:
    """
    How many requests of cost 1 fit between C{tat} and its ceiling.

    The headroom is C{capacity_seconds - (tat - now)}, counted in whole
    intervals; for a denied cost-1 request that is 0, and for a denied
    larger request it is what smaller ones could still use.
    """
    headroom = limit.capacity_seconds - max(0.0, tat - now)
    count = math.floor(headroom / limit.interval + EPSILON)
    return min(limit.burst, max(0, count))


def format_duration(seconds: float) -> str:
    """
    Format a duration the way OpenAI's C{x-ratelimit-reset-*} headers do.

    C{"0s"}, C{"21ms"}, C{"1.5s"}, C{"6m0s"}, C{"1h2m3s"}. The value is
    first rounded I{up} to a whole millisecond, so a client that waits what
    it is told is never early, and then formatted; rounding first means
    59.9994 s reads C{"1m0s"}, never C{"60s"}.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, not {seconds!r}")
    # round() removes float noise before ceil() rounds genuine fractions of
    # a millisecond up: 0.07 * 1000 == 70.00000000000001, and differences of
    # Unix times (about 1.8e9) carry errors near 1e-4 ms.
    ms = max(0, math.ceil(round(seconds * 1000, 2)))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, fraction = divmod(ms, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def retry_after_header(seconds: float) -> int:
    """
    The C{Retry-After} value for a denial: whole seconds, rounded up, and at
    least 1, because C{Retry-After: 0} invites an immediate retry that would
    be refused again.
    """
    return max(1, math.ceil(round(seconds, 6)))
