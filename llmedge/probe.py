# -*- test-case-name: tests.unit.test_probe -*-
"""
Whether the configured providers can be reached, for C{/health/ready}.

A load balancer asks C{/health/ready} often (every few seconds, from every
balancer), so the answer must not cost a call to a provider: a model call
costs money, and even a C{GET /models} per probe multiplies by the number
of balancers. Instead L{ProviderProbe} opens (and at once closes) one TCP
connection to each upstream provider every C{interval} seconds, on the
injected reactor, and C{/health/ready} reads the cached result.

A connection that opens says the host resolves, routes and listens: what
an instance can fix by being taken out of rotation (a broken network, a
DNS outage, a firewall). It does not say the provider's API works, which
fallback and the circuit breaker handle per request.

The instance is ready while at least one provider is reachable. The mock
provider always is. Before the first round of probes has ended every
provider counts as reachable, so a fresh instance is not marked down for
the time its first probe takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from llmedge.config import ProviderConfig

_DEFAULT_PORTS = {"http": 80, "https": 443}


def address_of(spec: ProviderConfig) -> tuple[str, int] | None:
    """
    The host and port to probe for a provider, or L{None} for one served in
    this process (the mock).
    """
    base_url = spec.options.get("base_url")
    if spec.kind == "mock" or not base_url:
        return None
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)


class _Hangup(Protocol):
    def connectionMade(self) -> None:
        self.transport.loseConnection()


class ProviderProbe(Service):
    """
    Probe every upstream provider every C{interval} seconds.

    @ivar reachable: provider name to the last probe's answer (absent
        until its first probe ends).
    @param connect: C{(host, port, timeout) -> Deferred} firing when a
        connection opened (and was closed), failing when it could not;
        a real TCP connection by default.
    """

    _log = Logger()

    def __init__(self, reactor, providers: Mapping[str, ProviderConfig], interval: float,
                 timeout: float = 2.0, connect=None) -> None:
        self._reactor = reactor
        self.interval = interval
        self._timeout = min(timeout, interval) if interval else timeout
        self._connect = connect or self._tcp
        self.reachable: dict[str, bool] = {}
        self._loop = LoopingCall(self.probe)
        self._loop.clock = reactor
        self.set_providers(providers)

    def set_providers(self, providers: Mapping[str, ProviderConfig]) -> None:
        """
        Probe these providers from now on (after a reload).
        """
        self._local = any(spec.kind == "mock" for spec in providers.values())
        self._addresses = {
            name: address for name, spec in providers.items()
            if (address := address_of(spec)) is not None
        }
        self.reachable = {n: r for n, r in self.reachable.items() if n in self._addresses}

    def ready(self) -> bool:
        """
        Whether some provider can serve: a local one, or an upstream not
        known to be unreachable.
        """
        if self._local or not self._addresses:
            return True
        return any(self.reachable.get(name, True) for name in self._addresses)

    def probe(self) -> Deferred:
        """
        One round: connect to every upstream provider; fires when all have
        answered or timed out.
        """
        rounds = []
        for name, (host, port) in list(self._addresses.items()):
            d = self._connect(host, port, self._timeout)
            d.addCallbacks(lambda _, name=name: self._result(name, True),
                           lambda failure, name=name: self._result(name, False, failure))
            rounds.append(d)
        return DeferredList(rounds)

    def _tcp(self, host: str, port: int, timeout: float) -> Deferred:
        """
        Open a TCP connection to C{host}:C{port} and close it at once.
        """
        endpoint = HostnameEndpoint(self._reactor, host, port, timeout=timeout)
        return endpoint.connect(Factory.forProtocol(_Hangup))

    def _result(self, name: str, up: bool, failure=None) -> None:
        if name not in self._addresses:
            return  # forgotten by a reload meanwhile
        before = self.reachable.get(name)
        self.reachable[name] = up
        if up and before is False:
            self._log.info("Provider {provider} is reachable again", provider=name)
        elif not up and before is not False:
            host, port = self._addresses[name]
            self._log.warn(
                "Provider {provider} is unreachable ({host}:{port}: {reason})",
                provider=name, host=host, port=port,
                reason=failure.getErrorMessage() if failure is not None else "?")

    def startService(self) -> None:
        super().startService()
        if self.interval:
            self._loop.start(self.interval, now=True).addErrback(
                lambda f: self._log.failure("Provider probes stopped", f))

    def stopService(self):
        if self._loop.running:
            self._loop.stop()
        return super().stopService()
