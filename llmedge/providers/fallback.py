# -*- test-case-name: tests.unit.test_fallback -*-
"""
Fallback across a model's targets, and the circuit breaker that keeps a
failing provider out of the way for a while.

A model may list several targets. When one fails before the client has
been sent anything (no connection, no first byte in time, a 5xx, a 429),
the next is tried; errors that are the request's own fault (a 400) are
answered at once, since every target would refuse them alike. All attempts
share the request's one deadline: the whole loop is one cancellable
Deferred, tracked by the request.

A provider that just failed is skipped for C{cooldown} seconds, so a dead
provider does not cost every request a connection timeout. If every target
is cooling down, the first is tried anyway: answering late beats refusing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime

from llmedge.errors import APIError
from llmedge.observe.exchange import Exchange
from llmedge.providers.base import Call, IProvider


class Breaker:
    """
    Remembers which providers failed recently.
    """

    def __init__(self, clock: IReactorTime, cooldown: float) -> None:
        self._clock = clock
        self.cooldown = cooldown
        self._open_until: dict[str, float] = {}

    def is_open(self, provider: str) -> bool:
        """
        Whether C{provider} is being skipped now.
        """
        until = self._open_until.get(provider)
        if until is None:
            return False
        if self._clock.seconds() >= until:
            del self._open_until[provider]
            return False
        return True

    def failed(self, provider: str) -> None:
        if self.cooldown > 0:
            self._open_until[provider] = self._clock.seconds() + self.cooldown

    def succeeded(self, provider: str) -> None:
        self._open_until.pop(provider, None)


def try_targets(
    targets: Sequence[tuple[IProvider, str]],
    method: str,
    call: Call,
    breaker: Breaker,
    clock: IReactorTime,
    exchange: Exchange,
) -> Deferred[Any]:
    """
    Ask each target in turn until one answers; fail with the last error.

    Each attempt is recorded in C{exchange.attempts} for the access log.
    """
    if len(targets) == 1:
        # Nothing to fall back to: call the provider straight, without the
        # coroutine machinery (a measurable share of a mock request's CPU).
        provider, model = targets[0]
        exchange.provider = provider.name
        started = clock.seconds()

        def failed(reason):
            if reason.check(APIError):
                exchange.attempts.append(_attempt(provider, model, clock, started, reason.value))
                if getattr(reason.value, "retryable", False):
                    breaker.failed(provider.name)
            return reason

        return maybeDeferred(getattr(provider, method), call, model).addErrback(failed)
    return Deferred.fromCoroutine(_attempts(targets, method, call, breaker, clock, exchange))


async def _attempts(targets, method, call, breaker, clock, exchange) -> Any:
    ready = [t for t in targets if not breaker.is_open(t[0].name)] or list(targets[:1])
    last: APIError | None = None
    for provider, model in ready:
        exchange.provider = provider.name
        started = clock.seconds()
        try:
            answer = await getattr(provider, method)(call, model)
        except APIError as error:
            exchange.attempts.append(_attempt(provider, model, clock, started, error))
            if not getattr(error, "retryable", False):
                raise
            breaker.failed(provider.name)
            last = error
            continue
        breaker.succeeded(provider.name)
        if len(targets) > 1:
            exchange.attempts.append(_attempt(provider, model, clock, started, None))
        return answer
    assert last is not None
    raise last


def _attempt(provider, model, clock, started, error: APIError | None) -> dict[str, Any]:
    return {
        "provider": provider.name,
        "model": model,
        "status": 200 if error is None else error.status,
        "error": None if error is None else (error.code or error.type),
        "ms": round((clock.seconds() - started) * 1000, 3),
    }
