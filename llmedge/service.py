# -*- test-case-name: tests.unit.test_service -*-
"""
L{EdgeService}: one llmedge instance, from its configuration to listening
sockets.

Listeners bind in C{privilegedStartService}, as Twisted's own port services
do, so a port below 1024 can be bound before C{twistd --uid} drops root, and
so a port that cannot be bound stops start-up with one line instead of
leaving a daemon running that listens nowhere.
"""

from __future__ import annotations

import signal

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from llmedge import __version__
from llmedge.cache.configured import build_store as build_cache_store, max_entry
from llmedge.cache.flight import Flights
from llmedge.config import Config, ConfigError, load
from llmedge.describe import describe
from llmedge.keys import KeyRing
from llmedge.limits.inflight import LocalInFlight, SharedInFlight
from llmedge.limits.memory import MemoryStore
from llmedge.observe.metrics import Metrics
from llmedge.observe.recorder import Recorder
from llmedge.probe import ProviderProbe
from llmedge.routing.router import build_router
from llmedge.providers.upstream import make_client, make_pool, tls_policy
from llmedge.tls import ReloadableTLS, TLSSettingsError
from llmedge.twisted_insides import clear_exit_signal
from llmedge.web.cached import ResponseCache
from llmedge.web.root import build_root
from llmedge.web.drain import drain
from llmedge.web.site import EdgeSite


def describe_address(address) -> str:
    """
    An address as an operator reads it: C{tcp:127.0.0.1:8080},
    C{unix:/run/llmedge.sock}.
    """
    if hasattr(address, "port"):
        return f"{address.type.lower()}:{address.host}:{address.port}"
    name = getattr(address, "name", None)
    if name is not None:
        return "unix:" + (name.decode() if isinstance(name, bytes) else name)
    return str(address)


class Listener(Service):
    """
    One endpoint serving one site.
    """

    _log = Logger()

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        factory,
        description: str,
        origin: str = "--listen",
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.origin = origin
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        failures: list[Failure] = []
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listening, failures.append)
        if failures:
            raise ConfigError(
                f"{self.origin}={self.description}: cannot listen: "
                f"{failures[0].getErrorMessage()}"
            )
        if not d.called:
            # Endpoints that bind later (none of Twisted's own) must not
            # fail silently: say so, loudly.
            d.addErrback(
                lambda f: self._log.failure(
                    "llmedge cannot listen on {endpoint}", f, endpoint=self.description
                )
            )

    def _listening(self, port: IListeningPort) -> None:
        self.port = port

    def announce(self) -> None:
        """
        Log the bound address; tools wait for this line to know llmedge
        serves (with C{tcp:0}, it is also how they learn the port).
        """
        if self.port is not None:
            self._log.info(
                "llmedge listening on {address}",
                address=describe_address(self.port.getHost()),
            )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return port.stopListening()


def build_limits(config: Config, reactor: IReactorTime, worker=None):
    """
    The rate-limit store the configuration asks for, or L{None} when rate
    limiting is off. Workers of one supervisor share theirs in memory they
    all map (L{llmedge.limits.shared}); with the redis backend, every
    instance and every worker decides in Redis (L{llmedge.limits.redis}).
    """
    if not config["rate_limit.enabled"]:
        return None
    if config["rate_limit.backend"] == "redis":
        from llmedge.limits.redis import RedisStore
        from llmedge.redis_connection import parse_url

        url = config["rate_limit.redis_url"]
        try:
            address = parse_url(url)
        except ValueError as e:
            shown = "<redacted>" if "@" in url else url
            raise ConfigError(f"REDIS_URL={shown}: {e}") from None
        return RedisStore(
            reactor, address, timeout=config["rate_limit.redis_timeout"],
            fail_open=config["rate_limit.redis_failure"] == "fail-open")
    if worker is not None:
        from llmedge.limits.shared import SharedStore

        return SharedStore(reactor, worker.limits_path)
    return MemoryStore(reactor)


def clean_exit(reactor) -> None:
    """
    Every request finished: end with status 0, not "killed by SIGTERM".

    twistd re-raises the signal that stopped the reactor once it has run
    down, so a stop that lost nothing would still end as a death by
    signal, which container runtimes and some supervisors report as a
    failure (status 143). The reactor keeps that signal in
    C{_exitSignal} (Twisted's C{_ISupportsExitSignalCapturing}); clearing
    it makes twistd exit normally. tests/integration/test_drain.py checks
    the status, so a Twisted that changes this is noticed.
    """
    clear_exit_signal(reactor)


def build_keys(config: Config) -> KeyRing:
    """
    The configured API keys; none with authentication on is an error.
    """
    keys = KeyRing.from_config(config)
    if config["auth.enabled"] and not keys:
        raise ConfigError(
            "AUTH_ENABLED=true but no API keys are configured (API_KEYS or "
            "[[auth.keys]]): add one (llmedge generate-key), or set "
            "AUTH_ENABLED=false to serve without authentication"
        )
    return keys


def routed_providers(config: Config) -> dict:
    """
    The providers some model routes to: the ones readiness depends on (the
    built-in mock is always configured, but serves nothing unless routed).
    """
    used = {target.provider for targets in config.models.values() for target in targets}
    return {name: spec for name, spec in config.providers.items() if name in used}


#: Settings a SIGHUP cannot apply (they shape sockets, processes, the pool,
#: the log or the metric registry): changed, they take effect on restart.
RESTART_ONLY = (
    "server.address", "server.listen", "server.workers", "rate_limit.backend",
    "rate_limit.redis_url", "upstream.pool_size", "upstream.idle_timeout", "log.level",
    "tracing.otlp_endpoint", "metrics.enabled", "tls.enabled", "tls.cert_path", "tls.key_path",
    "health.probe_interval_seconds", "server.shutdown_grace_seconds",
    "cache.backend", "cache.redis_url", "cache.max_bytes",
)


class TopService(MultiService):
    """
    A service twistd runs at the top: it offers the application the log
    observer the plugin made.
    """

    #: The log observer the plugin installs on twistd's application, if any.
    log_observer = None

    def setServiceParent(self, parent) -> None:
        """
        Under twistd, the parent is the application: offer it our log
        observer (twistd uses it unless C{--logger} names another).
        """
        super().setServiceParent(parent)
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.log_observer)


class EdgeService(TopService):
    """
    The top service: the site, the router, the rate-limit store and every
    listener.

    @ivar site: the L{EdgeSite} all listeners share.
    """

    _log = Logger()

    def __init__(self, config: Config, reactor: IReactorTime, worker=None) -> None:
        super().__init__()
        self._reactor = reactor
        self.config = config
        #: The L{llmedge.worker.WorkerSetup} when this is one worker of a
        #: supervisor, serving on sockets it inherited.
        self.worker = worker
        self.keys = build_keys(config)
        self.limits = build_limits(config, reactor, worker)
        #: Requests in flight per key, kept across reloads (shared by the
        #: workers of a supervisor).
        self.in_flight = (SharedInFlight(worker.inflight_path, worker.index)
                          if worker is not None else LocalInFlight())
        if isinstance(self.limits, Service):
            self.limits.setServiceParent(self)
        #: The response cache's store and its single flights, kept across
        #: reloads; L{None} when the cache was off at start-up.
        self.cache_store = build_cache_store(config, reactor)
        self.flights = Flights(reactor, config["cache.wait_seconds"])
        if isinstance(self.cache_store, Service):
            self.cache_store.setServiceParent(self)
        self.pool = make_pool(
            reactor, config["upstream.pool_size"], config["upstream.idle_timeout"])
        self.router = build_router(config, reactor, self._clients(config))
        self.metrics = None
        if config["metrics.enabled"]:
            self.metrics = Metrics(
                config.models, multiprocess_dir=worker.metrics_dir if worker else None)
            if self.limits is not None:
                # once: the store lives as long as the service, across reloads
                self.metrics.watch_limits(self.limits)
            if self.cache_store is not None:
                self.metrics.watch_cache(self.cache_store)
            if self.metrics.multiprocess:
                refresh = TimerService(1.0, self.metrics.refresh)
                refresh.clock = reactor
                refresh.setServiceParent(self)
        self.spans = None
        if config["tracing.otlp_endpoint"]:
            from llmedge.observe.otel import SpanExporter

            self.spans = SpanExporter(config["tracing.otlp_endpoint"], reactor)
        #: Set when the service stops: /health/ready answers 503 from then on.
        self.draining = False
        # The start-up value, as a supervisor's own wait for its workers
        # uses: a restart-only setting.
        self._grace = config["server.shutdown_grace_seconds"]
        self.probe = ProviderProbe(
            reactor, routed_providers(config), config["health.probe_interval_seconds"])
        self.probe.setServiceParent(self)
        self.site = EdgeSite(
            None, reactor=reactor, max_request_size=config.max_request_size,
            recorder=Recorder(reactor, self.metrics, self.spans))
        self._serve(config, self.router, self.keys)
        self.listeners: list[Listener] = []
        self.tls: list[ReloadableTLS] = []
        for index, description in enumerate(config.listen):
            try:
                tls = None
                if description.lower().startswith("ssl:"):
                    tls = ReloadableTLS(reactor, description)
                    self.tls.append(tls)
                if worker is not None:
                    endpoint = worker.endpoint(reactor, index, tls)
                elif tls is not None:
                    endpoint = tls.endpoint()
                else:
                    endpoint = serverFromString(reactor, description)
            except TLSSettingsError as e:
                raise ConfigError(f"{config.listen_origin}={e}") from None
            except Exception as e:  # endpoint parsers raise many kinds
                raise ConfigError(
                    f"{config.listen_origin}={description}: {_reason(e)}"
                ) from None
            listener = Listener(endpoint, self.site, description, config.listen_origin)
            listener.setServiceParent(self)
            self.listeners.append(listener)

    def startService(self) -> None:
        super().startService()
        if self.worker is None:
            # (A worker's supervisor logged this already.)
            self._log.info(
                "llmedge {version} starting",
                version=__version__,
                config=describe(self.config, self.keys),
            )
        if hasattr(signal, "SIGHUP") and hasattr(self._reactor, "callFromThread"):
            signal.signal(signal.SIGHUP,
                          lambda *_: self._reactor.callFromThread(self.reload))
        if not self.config["auth.enabled"]:
            self._log.warn(
                "Authentication is off (AUTH_ENABLED=false): anyone who can "
                "connect may use /v1"
            )
        # Announce once the reactor runs (signal handlers installed, so a
        # supervisor that reacts to the line can already stop us cleanly).
        self._reactor.callWhenRunning(self._announce)

    #: How to read the configuration again on SIGHUP: the arguments of
    #: L{llmedge.config.load} (environment, file, --listen, the file's
    #: origin), set by the plugin or the worker; L{None}: TLS files only.
    config_source = None

    def _unready(self) -> str | None:
        """
        Why C{/health/ready} should say 503, or L{None}.
        """
        if self.draining:
            return "draining"
        if not self.probe.ready():
            return "no configured provider is reachable"
        return None

    def _clients(self, config: Config):
        """
        What makes each provider's HTTP client: the process's pool, the
        configured CAs.
        """
        ca_bundle = config["upstream.ca_bundle"] or None
        try:
            policy = tls_policy(ca_bundle)
        except OSError as e:
            raise ConfigError(f"UPSTREAM_CA_BUNDLE={ca_bundle}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError(f"UPSTREAM_CA_BUNDLE={ca_bundle}: {e}") from None
        reactor, pool = self._reactor, self.pool
        return lambda timeout: make_client(reactor, pool, timeout, policy)

    def reload(self) -> None:
        """
        SIGHUP: read the configuration file again and serve by it (keys,
        limits, providers, models, timeouts), and take up renewed TLS
        certificates.

        The new tree of resources replaces the old one in one step on the
        reactor thread: requests already in flight finish with what they
        started with, the next one sees the new settings, and none is
        dropped. A configuration that does not load is refused with one log
        line and the running one stays, as do TLS files that do not load.
        """
        self._reload_config()
        self._reload_tls()

    def _reload_config(self) -> None:
        if self.config_source is None:
            return
        environ, path, listen, origin = self.config_source
        try:
            config = load(environ, path, listen, origin)
            keys = build_keys(config)
            router = build_router(config, self._reactor, self._clients(config),
                                  health=self.router.health)
        except ConfigError as e:
            self._log.error("SIGHUP: kept the running configuration: {error}", error=str(e))
            return
        except Exception:  # whatever it is, the running config stays
            self._log.failure("SIGHUP: kept the running configuration")
            return
        self._serve(config, router, keys)
        unapplied = [name for name in RESTART_ONLY if config[name] != self.config[name]]
        if config.listen != self.config.listen:
            unapplied.append("listeners")
        if config["rate_limit.enabled"] and self.limits is None:
            unapplied.append("rate_limit.enabled")
        if config["cache.enabled"] and self.cache_store is None:
            unapplied.append("cache.enabled")
        self.config, self.keys, self.router = config, keys, router
        self._log.info(
            "SIGHUP: reloaded {file}: {keys} keys, {providers} providers, {models} models",
            file=path or "(no file)", keys=len(keys), providers=len(router.providers),
            models=len(config.models))
        if unapplied:
            self._log.warn("SIGHUP: changes to {settings} take effect on restart only",
                           settings=", ".join(unapplied))

    def _serve(self, config: Config, router, keys: KeyRing) -> None:
        """
        Serve by C{config} from the next request on: its tree of resources
        (replacing the old one in one step), the site's per-request
        settings, the models metrics name, the providers probed. The same at
        start-up and on every reload, so no setting is applied by one and
        forgotten by the other.
        """
        if self.metrics is not None:
            self.metrics.set_models(config.models)
            self.metrics.watch_health(router.health)
        self.probe.set_providers(routed_providers(config))
        cache = None
        if config["cache.enabled"] and self.cache_store is not None:
            self.flights.wait = config["cache.wait_seconds"]
            cache = ResponseCache(self.cache_store, self.flights, config["cache.ttl_seconds"],
                                  config["cache.scope"], max_entry(config))
        site = self.site
        site.resource = build_root(
            config, router, self._reactor, keys, self.limits, self.metrics, self._unready,
            self.in_flight, cache)
        site.max_request_size = config.max_request_size
        site.generate_traces = config["tracing.enabled"]
        site.header_timeout = config["server.header_timeout_seconds"]
        site.body_timeout = config["server.body_timeout_seconds"]
        site.max_connections = config["server.max_connections"]
        site.http2_max_concurrent_streams = config["server.http2_max_concurrent_streams"]

    def _reload_tls(self) -> None:
        if not self.tls and self.config_source is None:
            self._log.info("SIGHUP: nothing to reload (no TLS listener)")
        for tls in self.tls:
            try:
                tls.reload()
            except TLSSettingsError as e:
                self._log.error("Kept the old TLS settings of {endpoint}: {error}",
                                endpoint=tls.description, error=str(e))
            else:
                self._log.info("Reloaded the TLS settings of {endpoint}",
                               endpoint=tls.description)

    def stopService(self) -> Deferred[None]:
        """
        Stop without dropping a request: /health/ready turns 503 and the
        listeners stop accepting at once, requests in flight finish (for at
        most C{server.shutdown_grace_seconds}, see L{llmedge.web.drain}),
        and only then does the rest stop (the rate-limit store, the
        upstream pool, span export).
        """
        self.draining = True
        listening = DeferredList([maybeDeferred(listener.stopService) for listener in self.listeners])
        drained = listening.addCallback(
            lambda _: drain(self.site, self._reactor, self._grace))
        drained.addCallback(self._drained)
        drained.addErrback(lambda f: self._log.failure("Draining failed", f))
        return drained.addBoth(lambda _: self._stop_the_rest())

    def _drained(self, complete: bool) -> None:
        if complete:
            clean_exit(self._reactor)

    def _stop_the_rest(self) -> Deferred[None]:
        stopped = super().stopService()
        # idle upstream connections are closed; busy ones end with their requests
        stopped.addBoth(lambda _: self.pool.closeCachedConnections())
        if self.spans is None:
            return stopped
        # the spans of the last requests go out before the process ends
        return stopped.addBoth(lambda _: self.spans.shutdown())

    def _announce(self) -> None:
        if self.worker is not None:
            # The supervisor announced the listeners it bound.
            self._log.info("llmedge worker {index} serving", index=self.worker.index)
            return
        for listener in self.listeners:
            listener.announce()

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except ConfigError as e:
            # twistd has redirected stderr to the log by now: the message
            # becomes one error line there, and the exit status is 1.
            raise SystemExit(f"llmedge: {e}") from None


def _reason(error: Exception) -> str:
    """
    The text of an endpoint error, on one line.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]
