# -*- test-case-name: tests.unit.test_routing_health -*-
"""
What llmedge knows of each deployment's health and load, per process.

A deployment is one place a public model is served: a provider and the
model name it knows (C{openai}/C{gpt-4o}). Health is kept per deployment,
not per provider, so one broken model does not take its neighbours on the
same provider down with it; what is certainly the provider's (its host
refuses connections, does not resolve, fails TLS, refuses llmedge's key)
is kept per provider, and counts against every deployment on it.

Each L{DeploymentHealth} holds a circuit breaker, the requests in flight on
it now, a moving average of its time to first byte, and how long it is
rate-limited after a 429 that said so. L{Health} keeps them by name and
survives reloads: a reload that keeps a deployment keeps what was learnt
of it.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from llmedge.routing.breaker import CLOSED, HALF_OPEN, OPEN, STATE_VALUES, CircuitBreaker

#: Weight of the newest sample in the moving average of time to first
#: byte: about the last ten requests count.
EWMA_ALPHA = 0.2


class DeploymentHealth:
    """
    One deployment's state.

    @ivar in_flight: requests on it now (streams until their end).
    @ivar latency: moving average of its time to first byte, in seconds,
        or L{None} before its first answer.
    @ivar limited_until: when a 429's wait is over (clock seconds).
    """

    def __init__(self, provider: str, model: str, breaker: CircuitBreaker,
                 host: CircuitBreaker) -> None:
        self.provider = provider
        self.model = model
        self.breaker = breaker
        self.host = host
        self.in_flight = 0
        self.latency: float | None = None
        self.limited_until = 0.0

    def ready(self, now: float) -> bool:
        """
        Whether a request may go here now: its provider's and its own
        breakers let it, and no 429 asked to wait.
        """
        return self.host.ready() and self.breaker.ready() and now >= self.limited_until

    @property
    def state(self) -> str:
        """
        The worse of its own breaker's state and its provider's.
        """
        states = (self.breaker.state, self.host.state)
        if OPEN in states:
            return OPEN
        if HALF_OPEN in states:
            return HALF_OPEN
        return CLOSED

    @property
    def state_value(self) -> int:
        """
        L{state} as a number, as metrics show it: 0 closed, 1 half-open, 2 open.
        """
        return STATE_VALUES[self.state]

    def answered(self, seconds: float) -> None:
        """
        A first byte came after C{seconds}.
        """
        if self.latency is None:
            self.latency = seconds
        else:
            self.latency += EWMA_ALPHA * (seconds - self.latency)


class Health:
    """
    Every deployment's and provider's state, made on first use.

    @param threshold: consecutive failures that open a deployment.
    @param cooldown: seconds a breaker stays open before its probe.
    """

    def __init__(self, clock: IReactorTime, threshold: int = 3, cooldown: float = 10.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.cooldown = cooldown
        self._deployments: dict[tuple[str, str], DeploymentHealth] = {}
        self._hosts: dict[str, CircuitBreaker] = {}

    def configure(self, threshold: int, cooldown: float) -> None:
        """
        New breaker settings (a reload): for every breaker, from now on.
        """
        self.threshold, self.cooldown = threshold, cooldown
        for breaker in [*self._hosts.values(), *(d.breaker for d in self._deployments.values())]:
            breaker.threshold = max(1, threshold)
            breaker.cooldown = cooldown

    def host(self, provider: str) -> CircuitBreaker:
        breaker = self._hosts.get(provider)
        if breaker is None:
            # A host's failure is certain: its breaker opens at the first.
            breaker = self._hosts[provider] = CircuitBreaker(self.clock, 1, self.cooldown)
        return breaker

    def deployment(self, provider: str, model: str) -> DeploymentHealth:
        key = (provider, model)
        found = self._deployments.get(key)
        if found is None:
            found = self._deployments[key] = DeploymentHealth(
                provider, model, CircuitBreaker(self.clock, self.threshold, self.cooldown),
                self.host(provider))
        return found

    def keep(self, deployments: set[tuple[str, str]]) -> None:
        """
        Forget what is no longer configured (after a reload).
        """
        for key in list(self._deployments):
            if key not in deployments:
                del self._deployments[key]
        providers = {provider for provider, _ in deployments}
        for name in list(self._hosts):
            if name not in providers:
                del self._hosts[name]

    def deployments(self) -> list[DeploymentHealth]:
        return list(self._deployments.values())

    def provider_open(self, provider: str) -> bool:
        """
        Whether a provider's own breaker is open or half-open (its host).
        """
        breaker = self._hosts.get(provider)
        return breaker is not None and breaker.state != CLOSED
