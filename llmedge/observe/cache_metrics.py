# -*- test-case-name: tests.unit.test_metrics -*-
"""
The response cache's size in the metrics: C{llmedge_cache_bytes},
C{llmedge_cache_entries} and C{llmedge_cache_evictions_total}, read from
its store's C{stats()} (L{llmedge.cache.store.ICacheStore}).

The store keeps its own counts, so in one process they are read at scrape
time, with nothing to keep in step; with workers, each worker's store is
written to the files C{/metrics} reads, every second.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CACHE_RESULTS = frozenset({"hit", "miss", "bypass"})
CACHE_BYTES_HELP = "Bytes of answers the response cache holds (keys and values)."
CACHE_ENTRIES_HELP = "Answers the response cache holds."
CACHE_EVICTIONS_HELP = ("Answers the response cache dropped to stay under CACHE_MAX_BYTES "
                        "before they expired.")


class CacheStats:
    """
    What the response cache's store holds, read from its C{stats()} (see
    L{llmedge.cache.store.ICacheStore}) when asked, never counted twice.

    The store keeps its own counts, so in one process this is a collector
    that reads them at scrape time: nothing to keep in step. The store may
    change on a reload; evictions of the stores watched before are carried
    over so that C{llmedge_cache_evictions_total} never goes down.
    """

    def __init__(self, store) -> None:
        self._store = store
        self._evicted_before = 0

    def follow(self, store) -> None:
        """
        Read C{store} from now on.
        """
        if store is not self._store:
            self._evicted_before = self.read()[2]
            self._store = store

    def read(self) -> tuple[int, int, int]:
        """
        The store's bytes, entries and evictions (those of earlier stores too).
        """
        stats = self._store.stats()
        return (stats.get("bytes", 0), stats.get("entries", 0),
                self._evicted_before + stats.get("evictions", 0))

    def describe(self):
        """
        The families L{collect} yields, without asking the store: lets the
        registry refuse a duplicate name at registration.
        """
        return self._families(0, 0, 0)

    def collect(self):
        """
        The store's values now: called at each scrape.
        """
        return self._families(*self.read())

    @staticmethod
    def _families(size: int, entries: int, evictions: int) -> list:
        return [GaugeMetricFamily("llmedge_cache_bytes", CACHE_BYTES_HELP, value=size),
                GaugeMetricFamily("llmedge_cache_entries", CACHE_ENTRIES_HELP, value=entries),
                CounterMetricFamily("llmedge_cache_evictions", CACHE_EVICTIONS_HELP,
                                    value=evictions)]


def watched_cache(store, registry: CollectorRegistry,
                  multiprocess: bool) -> tuple[CacheStats, Callable[[], None] | None]:
    """
    Show C{store}'s size in C{registry}: the L{CacheStats} read, and with
    workers the refresh that writes its values (L{None} in one process,
    where they are read at scrape time).
    """
    stats = CacheStats(store)
    if not multiprocess:
        registry.register(stats)
        return stats, None
    size = Gauge("llmedge_cache_bytes", CACHE_BYTES_HELP, registry=registry,
                 multiprocess_mode="livesum")
    entries = Gauge("llmedge_cache_entries", CACHE_ENTRIES_HELP, registry=registry,
                    multiprocess_mode="livesum")
    evictions = Counter("llmedge_cache_evictions", CACHE_EVICTIONS_HELP, registry=registry)
    counted = [0]

    def refresh() -> None:
        held, count, evicted = stats.read()
        size.set(held)
        entries.set(count)
        if evicted > counted[0]:
            evictions.inc(evicted - counted[0])
            counted[0] = evicted

    return stats, refresh
