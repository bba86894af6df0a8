# -*- test-case-name: tests.unit.test_attempts -*-
"""
One request's attempts across its model's deployments: in the order its
strategy gives, the ready ones first, retried within the deadline, the
health of each deployment updated by how it answered.

The loop, for a L{Route}:

  1. The strategy orders the deployments (L{llmedge.routing.strategies}).
     Those that can be asked now (their breakers closed, or half-open with
     the probe free; no 429 wait running) keep that order in front; the
     others follow, half-open first: a request never gets fewer attempts
     than a healthy path would, it only asks the unhealthy last.
  2. A failed attempt moves to the next deployment at once. When every
     deployment was asked, the next round starts after a jittered backoff
     (full jitter, doubling from C{backoff}), until C{max_attempts} are
     spent. A deployment that said how long to wait (429 with Retry-After)
     is asked again only after that wait. Nothing waits past the request's
     deadline; the whole loop is one Deferred the request tracks, so a
     client that goes away cancels it, sleeps included.
  3. An error about the request itself (a 4xx other than 429) ends the
     loop at once: every deployment would refuse it alike. A 429 about the
     request (OpenAI's "Request too large" for the account's tokens per
     minute) moves on without marking the deployment: one tenant's
     oversized request must not send everyone else to the fallback.
  4. When every attempt failed, the client gets the most informative
     error: a 429 with the shortest wait when all were rate limits;
     otherwise what an upstream said, before a malformed answer, before a
     timeout, before "unreachable".

A provider's Deferred fires when the answer's first byte is in (a stream's
head, a whole JSON answer): after that nothing is retried, because the
client may have been sent something. Streams count as in flight on their
deployment until they end.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from llmedge.errors import APIError, deadline_exceeded
from llmedge.observe.exchange import Exchange
from llmedge.providers.base import Call, IEventStream, IProvider
from llmedge.providers.upstream_errors import HOST, RATE_LIMIT, REQUEST
from llmedge.routing.breaker import HALF_OPEN
from llmedge.routing.health import DeploymentHealth
from llmedge.routing.strategies import ORDERS
from llmedge.routing.tracked import Tracked

#: The longest backoff between rounds, in seconds.
MAX_BACKOFF = 5.0

#: How informative each error is, when all attempts failed: the highest is
#: answered. Codes not listed are what an upstream said (an error status).
_RANK = {"upstream_unreachable": 1, "upstream_timeout": 2, "upstream_malformed_response": 3,
         "upstream_response_too_large": 3, "rate_limit_exceeded": 4}
_SAID = 5


@dataclass(frozen=True)
class Target:
    """
    One deployment of a route: the provider, the model name it knows, its
    weight for C{weighted}, and its health.
    """

    provider: IProvider
    model: str
    weight: float
    health: DeploymentHealth


@dataclass(frozen=True)
class Route:
    """
    A public model: its deployments and how to choose among them.
    """

    name: str
    targets: tuple[Target, ...]
    strategy: str = "ordered"
    max_attempts: int = 1
    #: whether its answers may be kept in the response cache
    cache: bool = True


def plan(route: Route, now: float, rng: random.Random) -> list[Target]:
    """
    The order to ask C{route}'s deployments in for one request: the
    strategy's, the ready ones first, then the others, half-open first.
    """
    ready, waiting = [], []
    for target in ORDERS[route.strategy](route.targets, rng):
        (ready if target.health.ready(now) else waiting).append(target)
    waiting.sort(key=lambda t: t.health.state != HALF_OPEN)
    return ready + waiting


def run(
    route: Route,
    method: str,
    call: Call,
    clock: IReactorTime,
    exchange: Exchange,
    rng: random.Random,
    backoff: float = 0.25,
    deadline: float | None = None,
) -> Deferred[Any]:
    """
    Ask C{route}'s deployments until one answers; fail with the most
    informative error. Each attempt is recorded in C{exchange.attempts}.
    """
    exchange.strategy = route.strategy
    if len(route.targets) == 1 and route.max_attempts == 1:
        # One deployment, one attempt (the mock, most single-target models):
        # no loop to run, so none of the coroutine machinery, which is a
        # measurable share of a cheap request's CPU.
        return _single(route.targets[0], method, call, clock, exchange)
    return Deferred.fromCoroutine(
        _attempts(route, method, call, clock, exchange, rng, backoff, deadline))


async def _attempts(route, method, call, clock, exchange, rng, backoff, deadline) -> Any:
    order = plan(route, clock.seconds(), rng)
    left = max(1, route.max_attempts)
    errors: list[APIError] = []
    excluded: set[int] = set()  # deployments this request must not ask again
    round = 0
    while left:
        asked = False
        for index, target in enumerate(order):
            if not left:
                break
            if index in excluded:
                continue
            now = clock.seconds()
            wait = max(0.0, target.health.limited_until - now)
            if round and not asked:  # a round after the first: back off before it
                wait = max(wait, rng.uniform(0, min(MAX_BACKOFF, backoff * 2 ** (round - 1))))
            if deadline is not None and now + wait >= deadline:
                continue
            if wait > 0:
                await deferLater(clock, wait)
            asked = True
            left -= 1
            try:
                return await _attempt(target, method, call, clock, exchange)
            except APIError as error:
                if not getattr(error, "retryable", False):
                    raise
                errors.append(error)
                if getattr(error, "scope", None) == REQUEST:
                    excluded.add(index)
        if not asked:
            break
        round += 1
    if not errors:
        # Every deployment's wait ran past the deadline before it could be asked.
        raise deadline_exceeded()
    raise best(errors)


def _single(target: Target, method: str, call: Call, clock, exchange: Exchange) -> Deferred:
    """
    The one attempt of a one-deployment route, as callbacks.
    """
    started = _begin(target, exchange, clock)
    d = maybeDeferred(getattr(target.provider, method), call, target.model)
    return d.addCallbacks(_answered, _failed, (target, clock, exchange, started), None,
                          (target, clock, exchange, started))


async def _attempt(target: Target, method: str, call: Call, clock, exchange: Exchange) -> Any:
    """
    Ask one deployment, keeping its health and the exchange's record.
    """
    started = _begin(target, exchange, clock)
    try:
        answer = await getattr(target.provider, method)(call, target.model)
    except BaseException:
        _failed(Failure(), target, clock, exchange, started)
        raise
    return _answered(answer, target, clock, exchange, started)


def _begin(target: Target, exchange: Exchange, clock) -> float:
    health = target.health
    exchange.provider = target.provider.name
    health.breaker.begin()
    health.host.begin()
    health.in_flight += 1
    return clock.seconds()


def _answered(answer, target: Target, clock, exchange: Exchange, started: float):
    health = target.health
    health.answered(clock.seconds() - started)
    health.breaker.succeeded()
    health.host.succeeded()
    exchange.attempts.append(_record(target, clock, started, None))
    if IEventStream.providedBy(answer):
        return Tracked(answer, health)
    health.in_flight -= 1
    return answer


def _failed(reason: Failure, target: Target, clock, exchange: Exchange, started: float):
    """
    Judge the deployment by how it failed and record the attempt; the
    failure goes on.
    """
    health = target.health
    health.in_flight -= 1
    if reason.check(APIError):
        _judge(health, reason.value, clock)
        exchange.attempts.append(_record(target, clock, started, reason.value))
    else:
        # Cancelled (the client left, the deadline passed) or a bug: no
        # verdict on the deployment.
        health.breaker.abandoned()
        health.host.abandoned()
    return reason


def _judge(health: DeploymentHealth, error: APIError, clock: IReactorTime) -> None:
    """
    What an error says of the deployment and of its provider.
    """
    scope = getattr(error, "scope", None)
    if not getattr(error, "retryable", False) or scope == REQUEST:
        # It answered, about the request: the deployment works.
        health.breaker.succeeded()
        health.host.succeeded()
    elif scope == HOST:
        health.host.trip()
        health.breaker.abandoned()
    elif scope == RATE_LIMIT:
        health.host.succeeded()
        health.breaker.abandoned()
        wait = retry_after(error)
        if wait:
            health.limited_until = max(health.limited_until, clock.seconds() + wait)
    else:
        health.host.succeeded()
        health.breaker.failed()


def retry_after(error: APIError) -> int | None:
    """
    The whole seconds an error's C{Retry-After} asks to wait, if any.
    """
    for name, value in error.headers:
        if name.lower() == b"retry-after" and value.isdigit():
            return int(value)
    return None


def best(errors: Sequence[APIError]) -> APIError:
    """
    The most informative of the errors of a request's attempts.
    """
    if all(getattr(e, "scope", None) in (RATE_LIMIT, REQUEST) and e.status == 429
           for e in errors):
        waits = [(retry_after(e), e) for e in errors]
        timed = [pair for pair in waits if pair[0] is not None]
        return min(timed, key=lambda pair: pair[0])[1] if timed else errors[-1]
    return max(reversed(errors), key=lambda e: _RANK.get(e.code, _SAID))


def _record(target: Target, clock, started: float, error: APIError | None) -> dict[str, Any]:
    return {
        "provider": target.provider.name,
        "model": target.model,
        "status": 200 if error is None else error.status,
        "error": None if error is None else (error.code or error.type),
        "outcome": "ok" if error is None else _outcome(error),
        "ms": round((clock.seconds() - started) * 1000, 3),
    }


def _outcome(error: APIError) -> str:
    if getattr(error, "scope", None) in (RATE_LIMIT, REQUEST) and error.status == 429:
        return "rate_limited"
    if error.code == "upstream_timeout":
        return "timeout"
    return getattr(error, "outcome", None) or "error"
