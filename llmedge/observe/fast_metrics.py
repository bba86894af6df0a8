# -*- test-case-name: tests.unit.test_fast_metrics -*-
"""
The request-path metric families, counted without locks in one process.

Every request ends with a dozen observations (L{llmedge.observe.metrics}).
prometheus_client's own metrics take a lock for each value they change and
check their arguments on every call: a third of a microsecond for a
counter, three quarters for a histogram, a few microseconds a request. In
one process llmedge does not need that: the reactor is one thread, and
every observation and every scrape of C{/metrics} run in it, one at a
time. So here a counter is a dict of floats keyed by label values, a
histogram a list of bucket counts and a sum found by C{bisect}, a gauge a
float; each is a collector that turns them into metric families only when
C{/metrics} is scraped.

What would break it: a thread calling C{Metrics.record} (or C{inc},
C{observe}, C{collect}: code run by C{deferToThread}, a scrape served by
prometheus_client's own threaded server). C{+=} on a dict item is not atomic, so increments would be lost,
and a scrape could meet a dict changing size. Keep every call in the
reactor thread, or use L{Client}.

The exposition is prometheus_client's, byte for byte, for the same
observations: the same samples in the same order, a series appearing when
its labels are first observed, C{_created} at that moment (unless
prometheus_client's created series are disabled), NaN counted in the sum
and in no bucket. With workers, L{Client} gives prometheus_client's own
metrics behind the same methods, for its multiprocess mode writes every
value to the files C{/metrics} reads.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import metrics as _client_metrics
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
)
from prometheus_client.utils import INF, floatToGoString

Labels = tuple[str, ...]


def _created_shown() -> bool:
    """
    Whether prometheus_client shows C{_created} series now (turned off by
    C{PROMETHEUS_DISABLE_CREATED_SERIES} or C{disable_created_metrics()}):
    read at each scrape, as its own metrics do.
    """
    return getattr(_client_metrics, "_use_created", True)


class _Series:
    """
    What counters and histograms share: their label names, and a series
    per distinct label values, started (with its C{_created} time) the
    first time they are observed.

    @ivar _values: the series, keyed by label values as callers pass them
        (strings, so as the series' own label values).
    """

    __slots__ = ("name", "documentation", "labelnames", "_values", "_created", "_now")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 now: Callable[[], float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._values: dict = {}
        self._created: dict[Labels, float] = {}
        self._now = now

    def _start(self, labels: tuple) -> Labels:
        """
        The key of the series for C{labels}, started now if it is new: the
        slow path, once per series, that checks what the hot path trusts.
        Values that are not strings are made strings, as prometheus_client's
        C{labels()} does (every later call for them comes here again).
        """
        key = tuple(str(value) for value in labels)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {labels!r}")
        if key not in self._values:
            self._created[key] = self._now()
            self._values[key] = self._zero()
        return key

    def _zero(self):
        """
        A new series' value.
        """
        raise NotImplementedError()

    def _labels(self, key: Labels) -> dict[str, str]:
        return dict(zip(self.labelnames, key))


class FastCounter(_Series):
    """
    A counter: a float per series.
    """

    __slots__ = ()

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 now: Callable[[], float]) -> None:
        # As prometheus_client's Counter: the family is named without it.
        super().__init__(name.removesuffix("_total"), documentation, labelnames, now)
        if not self.labelnames:
            self._start(())

    def _zero(self) -> float:
        return 0.0

    def inc(self, labels: Labels = (), amount: float = 1) -> None:
        """
        Add C{amount} (never negative: a counter only goes up) to the
        series C{labels}.
        """
        values = self._values
        try:
            value = values[labels]
        except KeyError:
            labels = self._start(labels)
            value = values[labels]
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        values[labels] = value + amount

    def describe(self) -> list:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        created = self._created if _created_shown() else {}
        for key, value in list(self._values.items()):
            family.add_metric(key, value, created.get(key))
        return [family]


class FastHistogram(_Series):
    """
    A histogram: per series a list of the counts of each bucket (not
    cumulative: an observation adds to one of them), then the sum.

    @param buckets: upper bounds, sorted, none negative; C{+Inf} is added.
    """

    __slots__ = ("_bounds", "_le")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Iterable[float], now: Callable[[], float]) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds) or not bounds or bounds[0] < 0:
            raise ValueError(f"{name}: buckets must be sorted and not negative")
        if bounds[-1] != INF:
            bounds.append(INF)
        self._bounds = bounds
        self._le = [floatToGoString(b) for b in bounds]
        super().__init__(name, documentation, labelnames, now)
        if not self.labelnames:
            self._start(())

    def _zero(self) -> list:
        return [0] * len(self._bounds) + [0.0]

    def observe(self, labels: Labels, amount: float) -> None:
        """
        Count C{amount} in the series C{labels}: in the first bucket whose
        bound is not below it (none for NaN), and in the sum.
        """
        try:
            series = self._values[labels]
        except KeyError:
            series = self._values[self._start(labels)]
        series[-1] += amount
        if amount == amount:  # not NaN, which no bound is at or above
            series[bisect_left(self._bounds, amount)] += 1

    def describe(self) -> list:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        show_created = _created_shown()
        for key, series in list(self._values.items()):
            buckets, total = [], 0.0
            for le, count in zip(self._le, series):
                total += count
                buckets.append((le, total))
            family.add_metric(key, buckets, series[-1])
            if show_created:
                family.add_sample(self.name + "_created", self._labels(key), self._created[key])
        return [family]


class FastGauge:
    """
    A gauge without labels: one float, with prometheus_client's Gauge's
    C{inc}, C{dec} and C{set}.
    """

    __slots__ = ("name", "documentation", "_value")

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self._value = 0.0

    def inc(self, amount: float = 1) -> None:
        self._value += amount

    def dec(self, amount: float = 1) -> None:
        self._value -= amount

    def set(self, value: float) -> None:
        self._value = float(value)

    def describe(self) -> list:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> list:
        return [GaugeMetricFamily(self.name, self.documentation, value=self._value)]


class LockFree:
    """
    Makes the request-path families of one process, each registered in
    C{registry} as it is made (so in the order C{/metrics} shows them).

    @param now: the wall clock of the C{_created} series.
    """

    def __init__(self, registry: CollectorRegistry,
                 now: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._now = now

    def _registered(self, collector):
        self._registry.register(collector)
        return collector

    def counter(self, name: str, documentation: str,
                labelnames: Sequence[str]) -> FastCounter:
        return self._registered(FastCounter(name, documentation, labelnames, self._now))

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str],
                  buckets: Iterable[float]) -> FastHistogram:
        return self._registered(
            FastHistogram(name, documentation, labelnames, buckets, self._now))

    def gauge(self, name: str, documentation: str, multiprocess_mode: str) -> FastGauge:
        """
        (C{multiprocess_mode}, how workers' values add up, has no meaning
        in one process.)
        """
        return self._registered(FastGauge(name, documentation))


class _Children:
    """
    A prometheus_client metric behind L{FastCounter}'s and
    L{FastHistogram}'s methods, its label children resolved once per
    distinct label values.
    """

    __slots__ = ("_metric", "_children")

    def __init__(self, metric, labelnames: Sequence[str]) -> None:
        self._metric = metric
        self._children: dict[tuple, object] = {} if labelnames else {(): metric}

    def _child(self, labels: tuple):
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child

    def inc(self, labels: Labels = (), amount: float = 1) -> None:
        self._child(labels).inc(amount)

    def observe(self, labels: Labels, amount: float) -> None:
        self._child(labels).observe(amount)


class Client:
    """
    Makes the same families from prometheus_client's own metrics: with
    workers, its multiprocess mode writes their values to the files
    C{/metrics} reads from every worker.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> _Children:
        return _Children(Counter(name, documentation, labelnames, registry=self._registry),
                         labelnames)

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str],
                  buckets: Iterable[float]) -> _Children:
        return _Children(Histogram(name, documentation, labelnames, buckets=tuple(buckets),
                                   registry=self._registry), labelnames)

    def gauge(self, name: str, documentation: str, multiprocess_mode: str) -> Gauge:
        return Gauge(name, documentation, registry=self._registry,
                     multiprocess_mode=multiprocess_mode)
