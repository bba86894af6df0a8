# -*- test-case-name: tests.unit.test_strategies -*-
"""
How a public model's deployments are ordered for one request.

A strategy only orders: which deployment is asked first, which next if it
fails. Health then moves those that cannot be asked now to the back
(L{llmedge.routing.attempts}), so fallback applies inside every strategy.

  - C{ordered}: as configured (the first is the primary, the rest its
    fallbacks);
  - C{weighted}: a random order drawn by weight, without replacement, so
    over many requests each deployment comes first in proportion to its
    C{weight};
  - C{least-busy}: fewest requests in flight in this process first, ties
    in configured order;
  - C{latency}: lowest moving average of time to first byte first, those
    never measured before all others (so a new deployment is measured);
    a share of requests (L{EXPLORE}) puts another deployment first, so one
    that was slow and recovered is measured again and can win back its
    traffic.

Randomness comes in as a parameter (a L{random.Random}), so tests draw
the same orders every run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from llmedge.routing.health import DeploymentHealth

#: Share of requests for which C{latency} puts another deployment first.
EXPLORE = 0.1



class Routable(Protocol):
    weight: float
    health: DeploymentHealth


def ordered(targets: Sequence[Routable], rng: random.Random) -> list:
    return list(targets)


def weighted(targets: Sequence[Routable], rng: random.Random) -> list:
    remaining = list(targets)
    out = []
    while len(remaining) > 1:
        pick = rng.random() * sum(t.weight for t in remaining)
        for i, target in enumerate(remaining):
            pick -= target.weight
            if pick < 0:
                break
        out.append(remaining.pop(i))
    return out + remaining


def least_busy(targets: Sequence[Routable], rng: random.Random) -> list:
    return sorted(targets, key=lambda t: t.health.in_flight)


def latency(targets: Sequence[Routable], rng: random.Random) -> list:
    def key(target):
        measured = target.health.latency
        return (measured is not None, measured or 0.0)

    out = sorted(targets, key=key)
    if len(out) > 1 and rng.random() < EXPLORE:
        out.insert(0, out.pop(rng.randrange(1, len(out))))
    return out


ORDERS: dict[str, Callable[[Sequence[Routable], random.Random], list]] = {
    "ordered": ordered,
    "weighted": weighted,
    "least-busy": least_busy,
    "latency": latency,
}