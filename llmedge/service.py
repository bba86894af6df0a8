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
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from llmedge import __version__
from llmedge.config import Config, ConfigError
from llmedge.describe import describe
from llmedge.keys import KeyRing
from llmedge.limits.memory import MemoryStore
from llmedge.observe.metrics import Metrics
from llmedge.observe.recorder import Recorder
from llmedge.providers.router import build_router
from llmedge.providers.upstream import make_client, make_pool, tls_policy
from llmedge.tls import ReloadableTLS, TLSSettingsError
from llmedge.web.root import build_root
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
    all map (L{llmedge.limits.shared}).
    """
    if not config["rate_limit.enabled"]:
        return None
    if config["rate_limit.backend"] != "memory":
        raise ConfigError(
            f"RATE_LIMIT_BACKEND={config['rate_limit.backend']!r}: not available in "
            "this version (use memory)"
        )
    if worker is not None:
        from llmedge.limits.shared import SharedStore

        return SharedStore(reactor, worker.limits_path)
    return MemoryStore(reactor)


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
        self.keys = KeyRing.from_config(config)
        if config["auth.enabled"] and not self.keys:
            raise ConfigError(
                "AUTH_ENABLED=true but no API keys are configured (API_KEYS or "
                "[[auth.keys]]): add one (llmedge generate-key), or set "
                "AUTH_ENABLED=false to serve without authentication"
            )
        self.limits = build_limits(config, reactor, worker)
        if isinstance(self.limits, Service):
            self.limits.setServiceParent(self)
        self.pool = make_pool(
            reactor, config["upstream.pool_size"], config["upstream.idle_timeout"])
        ca_bundle = config["upstream.ca_bundle"] or None
        try:
            policy = tls_policy(ca_bundle)
        except OSError as e:
            raise ConfigError(f"UPSTREAM_CA_BUNDLE={ca_bundle}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise ConfigError(f"UPSTREAM_CA_BUNDLE={ca_bundle}: {e}") from None
        self.router = build_router(
            config, reactor, lambda timeout: make_client(reactor, self.pool, timeout, policy))
        self.metrics = None
        if config["metrics.enabled"]:
            self.metrics = Metrics(
                config.models, multiprocess_dir=worker.metrics_dir if worker else None)
            self.metrics.watch_breaker(self.router.breaker, self.router.providers)
            if self.metrics.multiprocess:
                refresh = TimerService(1.0, self.metrics.refresh)
                refresh.clock = reactor
                refresh.setServiceParent(self)
        self.spans = None
        if config["tracing.otlp_endpoint"]:
            from llmedge.observe.otel import SpanExporter

            self.spans = SpanExporter(config["tracing.otlp_endpoint"], reactor)
        self.site = EdgeSite(
            build_root(config, self.router, reactor, self.keys, self.limits, self.metrics),
            reactor=reactor,
            max_request_size=config.max_request_size,
            recorder=Recorder(reactor, self.metrics, self.spans),
            generate_traces=config["tracing.enabled"],
        )
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

    def reload(self) -> None:
        """
        SIGHUP: take up renewed certificates and keys. Connections already
        established keep the ones they started with; a listener whose new
        files are unusable keeps its old ones and says why.
        """
        if not self.tls:
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
