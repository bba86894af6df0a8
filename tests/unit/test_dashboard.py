"""
The Grafana dashboard shipped in packaging/grafana loads, and every query
names metrics llmedge really exports.
"""

import json
import re
from pathlib import Path

from twisted.internet.task import Clock

from llmedge.observe.metrics import Metrics
from llmedge.routing.health import Health

DASHBOARD = Path(__file__).parents[2] / "packaging" / "grafana" / "llmedge-dashboard.json"


class RedisLike:
    """
    A store with a backend to lose, as the Redis store is: its metrics
    are exported only then.
    """

    def watch(self, errored, changed):
        pass


def exported_names():
    names = set()
    metrics = Metrics(["mock"])
    metrics.watch_limits(RedisLike())
    health = Health(Clock())
    health.deployment("mock", "mock")
    metrics.watch_health(health)
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        kind = family.type
        if kind == "counter":
            names.add(family.name + "_total")
        if kind == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def test_dashboard_is_a_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "llmedge"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["type"] and panel["title"] and panel["targets"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


def test_every_query_uses_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported_names()
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bllmedge_[a-z_]+", target["expr"])
    }
    assert used and used <= known, used - known
