# -*- test-case-name: tests.unit.test_metrics -*-
"""
Prometheus metrics, kept in one L{CollectorRegistry} per service.

A registry of our own (not prometheus_client's global one) means two
services in one process, as in tests, never share counters, and nothing
another library registers leaks into C{/metrics}.

Every label has a bounded set of values, decided at start-up: route
templates (never raw paths), configured key ids (C{anonymous} without a
key), configured model and provider names (anything else is C{other}),
statuses and methods llmedge itself produces. So a client cannot grow the
series count by sending odd paths or model names.

In one process the metrics a request ends with are counted without
locks (L{llmedge.observe.fast_metrics.LockFree}: the reactor is one
thread); with workers they are prometheus_client's own, whose
multiprocess mode shares them through files. C{/metrics} shows the same
either way.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass

import twisted
from prometheus_client import CollectorRegistry, Counter, Gauge

from llmedge import __version__
from llmedge.observe.cache_metrics import CACHE_RESULTS, CacheStats, watched_cache
from llmedge.observe.exchange import Exchange
from llmedge.observe.fast_metrics import Client, LockFree

DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
OVERHEAD_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
)
BYTES_BUCKETS = tuple(4**n for n in range(4, 13))  # 256 B .. 16 MiB
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
REFUSALS = frozenset({"bad_request", "uri_too_long", "headers_too_large", "request_timeout",
                      "too_many_connections", "too_many_streams", "too_many_resets"})
ANONYMOUS = "anonymous"


@dataclass(slots=True)
class Finished:
    """
    What the metrics need to know about a request that ended. (Not frozen:
    a frozen dataclass sets each field through C{object.__setattr__},
    four times the cost, once per request.)
    """

    method: str
    route: str
    status: int
    duration: float
    response_bytes: int
    key: str | None
    exchange: Exchange


class Metrics:
    """
    The service's metrics.

    @param models: the configured public model names.
    @param families: makes the request-path metrics from the registry:
        L{LockFree} in one process, prometheus_client's own (L{Client})
        with workers.
    """

    def __init__(
        self,
        models: Iterable[str],
        registry: CollectorRegistry | None = None,
        multiprocess_dir: str | None = None,
        families=None,
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.multiprocess = multiprocess_dir is not None
        if multiprocess_dir is None:
            #: What C{/metrics} shows: this registry, or with workers every
            #: worker's values, read from the files they all write.
            self.exposition = self.registry
        else:
            from prometheus_client.multiprocess import MultiProcessCollector

            self.exposition = CollectorRegistry()
            MultiProcessCollector(self.exposition, path=multiprocess_dir)
        self._refreshers: list = []
        self._cooling = None
        self._breaker_state = None
        self._deployment_in_flight = None
        self._watched: list[tuple[str, str]] = []
        self._cache: CacheStats | None = None
        self._cache_refresh = None
        self._models = frozenset(models)
        r = self.registry
        if families is None:
            families = Client if self.multiprocess else LockFree
        made = families(r)
        counter, histogram, gauge = made.counter, made.histogram, made.gauge
        self._requests = counter(
            "llmedge_http_requests", "HTTP requests answered.", ["route", "method", "status"])
        self._duration = histogram(
            "llmedge_http_request_duration_seconds", "Time from request to last byte.",
            ["route"], DURATION_BUCKETS)
        self.in_flight = gauge(
            "llmedge_http_requests_in_flight", "Requests being answered now.", "livesum")
        self.open_connections = gauge(
            "llmedge_open_connections", "Client connections open now.", "livesum")
        self.unread_connections = gauge(
            "llmedge_unread_connections",
            "Client connections llmedge has stopped reading because their client does not "
            "read its answers (unsent output over the transport's mark).", "livesum")
        self._refused = counter(
            "llmedge_refused",
            "Connections and requests refused before any route saw them: malformed HTTP "
            "(bad_request, uri_too_long, headers_too_large), too slow (request_timeout), "
            "too many connections (too_many_connections).", ["reason"])
        self._request_bytes = histogram(
            "llmedge_request_body_bytes", "Request body sizes.", [], BYTES_BUCKETS)
        self._response_bytes = histogram(
            "llmedge_response_body_bytes", "Response body sizes.", [], BYTES_BUCKETS)
        self._auth_failures = counter(
            "llmedge_auth_failures", "Requests refused for want of a valid key.", ["reason"])
        self._rate_limited = counter(
            "llmedge_rate_limited", "Requests refused by the rate limit.", ["key"])
        self._timeouts = counter(
            "llmedge_timeouts", "Requests that ran past their deadline.", ["route"])
        self._upstream = histogram(
            "llmedge_upstream_request_duration_seconds",
            "Time waiting on providers, by how the call ended.",
            ["provider", "model", "outcome"], DURATION_BUCKETS)
        self._overhead = histogram(
            "llmedge_overhead_seconds", "Time spent in llmedge itself (total minus upstream).",
            ["route"], OVERHEAD_BUCKETS)
        self._first_token = histogram(
            "llmedge_time_to_first_token_seconds", "From the provider call to its first event.",
            ["provider", "model"], DURATION_BUCKETS)
        self._tokens = counter(
            "llmedge_tokens", "Tokens used, as providers report them.",
            ["provider", "model", "type"])
        self._attempts = counter(
            "llmedge_deployment_attempts",
            "Requests sent to a deployment (a provider and its model), by how they ended: "
            "ok, error, unreachable, malformed, too_large, timeout, rate_limited.",
            ["provider", "model", "outcome"])
        self._first_byte = histogram(
            "llmedge_deployment_first_byte_seconds",
            "From asking a deployment to its answer's first byte (a stream's head, a "
            "whole JSON answer).", ["provider", "model"], DURATION_BUCKETS)
        self._cache_requests = counter(
            "llmedge_cache_requests",
            "Model requests by what the response cache did: hit (answered from it), miss "
            "(asked upstream), bypass (the cache was off, refused or unavailable).",
            ["result"])
        Gauge(
            "llmedge_build_info", "The running llmedge, Twisted and Python.",
            ["version", "twisted", "python"], registry=r, multiprocess_mode="max",
        ).labels(__version__, twisted.__version__, platform.python_version()).set(1)

    def watch_health(self, health) -> None:
        """
        Show what routing knows of each deployment (L{llmedge.routing.health}):
        C{llmedge_deployment_breaker_state{provider,model}} (0 closed, 1
        half-open, 2 open, the worse of its own breaker and its provider's),
        C{llmedge_deployment_in_flight{provider,model}}, and
        C{llmedge_provider_cooling_down{provider}} (1 while the provider's own
        breaker, for failures of its host or credentials, is not closed).
        Called again after a reload, it follows the deployments configured
        then.
        """
        if self._breaker_state is None:
            r = self.registry
            self._breaker_state = Gauge(
                "llmedge_deployment_breaker_state",
                "A deployment's circuit breaker: 0 closed, 1 half-open, 2 open.",
                ["provider", "model"], registry=r, multiprocess_mode="max")
            self._deployment_in_flight = Gauge(
                "llmedge_deployment_in_flight",
                "Requests on a deployment now, streams until their end.",
                ["provider", "model"], registry=r, multiprocess_mode="livesum")
            self._cooling = Gauge(
                "llmedge_provider_cooling_down",
                "1 while a provider's own circuit breaker (host unreachable, credentials "
                "refused) is open or half-open.",
                ["provider"], registry=r, multiprocess_mode="max")
        deployments = {(d.provider, d.model): d for d in health.deployments()}
        providers = {provider for provider, _ in deployments}
        for key in set(self._watched) - set(deployments):
            self._breaker_state.remove(*key)
            self._deployment_in_flight.remove(*key)
        for name in {p for p, _ in self._watched} - providers:
            self._cooling.remove(name)
        self._watched = list(deployments)
        values = []
        for (provider, model), deployment in deployments.items():
            values.append((self._breaker_state.labels(provider, model),
                           lambda d=deployment: float(d.state_value)))
            values.append((self._deployment_in_flight.labels(provider, model),
                           lambda d=deployment: float(d.in_flight)))
        for name in providers:
            values.append((self._cooling.labels(name),
                           lambda name=name: float(health.provider_open(name))))
        self._refreshers = []
        for child, value in values:
            if self.multiprocess:
                # Values are read from files, never computed at scrape time:
                # L{refresh} writes them.
                self._refreshers.append(lambda child=child, value=value: child.set(value()))
            else:
                child.set_function(value)

    def set_models(self, models: Iterable[str]) -> None:
        """
        The configured model names, after a reload: label values from now on.
        """
        self._models = frozenset(models)

    def watch_limits(self, store) -> None:
        """
        For a rate-limit store with a backend to lose (Redis: one that
        offers C{watch}), count the decisions the backend did not make, as
        C{llmedge_rate_limit_backend_errors_total}, and show whether it is
        reachable, as C{llmedge_rate_limit_backend_up} (with workers, 0
        while any live worker cannot reach it).
        """
        watch = getattr(store, "watch", None)
        if watch is None:
            return
        errors = Counter(
            "llmedge_rate_limit_backend_errors",
            "Rate-limit decisions the backend (Redis) did not make: decided by "
            "REDIS_FAILURE_POLICY instead.", registry=self.registry)
        up = Gauge(
            "llmedge_rate_limit_backend_up",
            "1 while the rate-limit backend (Redis) answers, 0 while it does not.",
            registry=self.registry, multiprocess_mode="livemin")
        watch(errors.inc, lambda available: up.set(float(available)))

    def watch_cache(self, store) -> None:
        """
        Show what the response cache's store (an
        L{llmedge.cache.store.ICacheStore}) holds, from its C{stats()}:
        C{llmedge_cache_bytes}, C{llmedge_cache_entries} and
        C{llmedge_cache_evictions_total}. Called again (a reload that made a
        new store), it follows the new store.

        In one process they are read at scrape time. With workers, each
        worker holds its own store, so L{refresh} writes each worker's
        values to the files C{/metrics} reads: the gauges are summed over
        the live workers, the evictions over all of them.
        """
        if self._cache is not None:
            self._cache.follow(store)
            return
        self._cache, self._cache_refresh = watched_cache(
            store, self.registry, self.multiprocess)

    def refresh(self) -> None:
        """
        With workers, write the values other processes cannot compute (the
        breaker's state, the cache's size); the service calls this every
        second.
        """
        for refresh in self._refreshers:
            refresh()
        if self._cache_refresh is not None:
            self._cache_refresh()

    def refused(self, reason: str) -> None:
        """
        Count one connection or request refused while it was being read.
        """
        self._refused.inc((reason if reason in REFUSALS else OTHER,))

    def model_label(self, model: str | None) -> str:
        """
        A model name as a label value: configured names only.
        """
        return model if model in self._models else OTHER

    def record(self, done: Finished) -> None:
        """
        Count one request that ended.
        """
        exchange = done.exchange
        route = (done.route,)
        method = done.method if done.method in METHODS else OTHER
        self._requests.inc((done.route, method, str(done.status)))
        self._duration.observe(route, done.duration)
        self._request_bytes.observe((), exchange.request_bytes)
        self._response_bytes.observe((), done.response_bytes)
        upstream = exchange.upstream_seconds or 0.0
        self._overhead.observe(route, max(0.0, done.duration - upstream))
        if exchange.provider is None:
            if done.status == 401:
                self._auth_failures.inc((exchange.error_code or OTHER,))
            elif done.status == 429:
                self._rate_limited.inc((done.key or ANONYMOUS,))
        if exchange.error_code == "timeout":
            self._timeouts.inc(route)
        if exchange.cache is not None:
            self._cache_requests.inc((exchange.cache if exchange.cache in CACHE_RESULTS
                                      else OTHER,))
        if exchange.provider is not None:
            self._record_upstream(exchange)

    def _record_upstream(self, exchange: Exchange) -> None:
        provider, model = exchange.provider, self.model_label(exchange.model)
        if exchange.upstream_seconds is not None:
            self._upstream.observe((provider, model, exchange.outcome or OTHER),
                                   exchange.upstream_seconds)
        if exchange.first_token_seconds is not None:
            self._first_token.observe((provider, model), exchange.first_token_seconds)
        if exchange.prompt_tokens:
            self._tokens.inc((provider, model, "prompt"), exchange.prompt_tokens)
        if exchange.completion_tokens:
            self._tokens.inc((provider, model, "completion"), exchange.completion_tokens)
        for attempt in exchange.attempts:
            deployment = (attempt["provider"], attempt["model"])
            self._attempts.inc(deployment + (attempt["outcome"],))
            if attempt["outcome"] == "ok":
                self._first_byte.observe(deployment, attempt["ms"] / 1000)
