# -*- test-case-name: tests.unit.test_metrics -*-
"""
C{GET /metrics}: the service's registry in Prometheus' text format.

Rendered synchronously in the reactor thread: a scrape of llmedge's few
hundred series takes well under a millisecond, less than handing it to a
thread (as C{prometheus_client.twisted.MetricsResource} does) would cost.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from llmedge.web.resource import Leaf


class MetricsPage(Leaf):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request) -> bytes:
        body = generate_latest(self._registry)
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        return body
