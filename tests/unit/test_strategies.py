"""
The strategies' orders: as configured, drawn by weight, fewest in flight,
lowest latency with exploration.
"""

import random
from collections import Counter
from dataclasses import dataclass

from twisted.internet.task import Clock

from llmedge.routing.health import Health
from llmedge.routing.strategies import EXPLORE, latency, least_busy, ordered, weighted


@dataclass
class T:
    name: str
    weight: float
    health: object


def targets(*weights):
    health = Health(Clock())
    return [T(f"d{i}", w, health.deployment("p", f"d{i}")) for i, w in enumerate(weights)]


def names(order):
    return [t.name for t in order]


def test_ordered_keeps_the_configured_order():
    ts = targets(1, 1, 1)
    assert names(ordered(ts, random.Random(1))) == ["d0", "d1", "d2"]


def test_weighted_puts_each_first_in_proportion_to_its_weight():
    ts = targets(3, 1)
    rng = random.Random(7)
    firsts = Counter(weighted(ts, rng)[0].name for _ in range(10000))
    assert abs(firsts["d0"] / 10000 - 0.75) < 0.02


def test_weighted_orders_every_deployment_once():
    ts = targets(5, 1, 1)
    for seed in range(50):
        assert sorted(names(weighted(ts, random.Random(seed)))) == ["d0", "d1", "d2"]


def test_least_busy_puts_the_fewest_in_flight_first_ties_in_order():
    ts = targets(1, 1, 1)
    ts[0].health.in_flight = 2
    ts[2].health.in_flight = 1
    assert names(least_busy(ts, random.Random(1))) == ["d1", "d2", "d0"]
    ts[1].health.in_flight = 1
    assert names(least_busy(ts, random.Random(1))) == ["d1", "d2", "d0"]


def test_latency_puts_unmeasured_first_then_the_fastest():
    ts = targets(1, 1, 1)
    ts[0].health.answered(0.5)
    ts[2].health.answered(0.1)

    class Never(random.Random):
        def random(self):
            return 1.0  # never explore

    assert names(latency(ts, Never())) == ["d1", "d2", "d0"]


def test_latency_explores_another_deployment_now_and_then():
    ts = targets(1, 1)
    ts[0].health.answered(0.1)
    ts[1].health.answered(0.9)
    rng = random.Random(3)
    firsts = Counter(latency(ts, rng)[0].name for _ in range(10000))
    assert abs(firsts["d1"] / 10000 - EXPLORE) < 0.02


def test_the_moving_average_follows_recent_answers():
    [t] = targets(1)
    t.health.answered(1.0)
    for _ in range(30):
        t.health.answered(0.1)
    assert t.health.latency < 0.11


def test_every_strategy_the_configuration_accepts_has_an_order():
    from llmedge.config import STRATEGIES
    from llmedge.routing.strategies import ORDERS

    assert tuple(ORDERS) == STRATEGIES
