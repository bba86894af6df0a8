# -*- test-case-name: tests.unit.test_resources -*-
"""
The root of llmedge's resource tree, and the wrappers that protect it::

    Authenticated(                                  unless AUTH_ENABLED=false
        /health, /health/live, /health/ready        public unless AUTH_HEALTH_CHECK
        /metrics                                    ditto; absent if ENABLE_METRICS=false
        /v1 = RateLimited(Deadline(V1)))            RateLimited unless disabled;
                                                    V1's calls consult the cache if on

Authentication guards the whole tree, with public path prefixes, so a path
is protected unless opened on purpose; rate limits and the deadline concern
the API only. Everything is decided here, so the tree shows what protects
what.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource

from llmedge.config import Config
from llmedge.keys import KeyRing
from llmedge.limits.gcra import Limit
from llmedge.limits.store import IRateLimitStore
from llmedge.observe.metrics import Metrics
from llmedge.routing.router import Router
from llmedge.web.auth import Authenticated
from llmedge.web.deadline import Deadline
from llmedge.web.concurrency import ConcurrencyLimited
from llmedge.web.health import Health
from llmedge.web.token_limits import TokenLimiter
from llmedge.web.metrics import MetricsPage
from llmedge.web.ratelimit import RateLimited
from llmedge.web.resource import Node
from llmedge.web.v1 import build_v1

#: What AUTH_HEALTH_CHECK=true takes out of the public paths.
HEALTH_PATHS = ("/health", "/metrics")


def public_paths(config: Config) -> tuple[str, ...]:
    """
    The path prefixes served without a key.
    """
    paths = config["auth.public_paths"]
    if config["auth.health_check"]:
        paths = tuple(p for p in paths if p not in HEALTH_PATHS)
    return paths


def build_root(
    config: Config,
    router: Router,
    clock: IReactorTime,
    keys: KeyRing,
    limits: IRateLimitStore | None,
    metrics: Metrics | None = None,
    unready=lambda: None,
    in_flight=None,
    cache=None,
) -> IResource:
    """
    The whole tree for one site, wrapped as the configuration says.
    """
    root = Node()
    root.putChild(b"health", Health(clock, unready))
    if metrics is not None:
        root.putChild(b"metrics", MetricsPage(metrics.exposition))
    tokens = None
    if config["rate_limit.enabled"] and limits is not None and (
            config["rate_limit.tokens_per_minute"] or any(k.tokens_per_minute for k in keys)):
        tokens = TokenLimiter(limits, config["rate_limit.tokens_per_minute"],
                              config["rate_limit.default_max_tokens"])
    v1: IResource = Deadline(
        build_v1(router, clock, config["server.stream_keepalive_seconds"], tokens,
                 config["upstream.max_response_bytes"], cache),
        config.timeout_seconds, clock)
    if config["rate_limit.enabled"] and limits is not None:
        default = Limit(per_minute=config["rate_limit.rpm"], burst=config["rate_limit.burst"])
        v1 = RateLimited(v1, limits, default)
    bound = config["rate_limit.max_concurrent_requests"]
    if config["auth.enabled"] and (bound or any(k.max_concurrent_requests for k in keys)):
        # Outside the rate limit: a request refused for concurrency costs
        # no rate-limit unit.
        v1 = ConcurrencyLimited(v1, bound, in_flight)
    root.putChild(b"v1", v1)
    if not config["auth.enabled"]:
        return root
    return Authenticated(root, keys, public_paths(config))
