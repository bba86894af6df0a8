# -*- test-case-name: tests.unit.test_router -*-
"""
The router: which deployments serve a public model name.

Clients name models by the public names the operator configured (C{[models]}
in the TOML file); each name maps to a L{Route}: its targets (a provider
and the model name that provider knows, each with its health) and how to
choose among them (L{llmedge.routing}). Keeping this mapping in one object
lets C{/v1/models} list exactly what the request handlers will accept.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from twisted.internet.interfaces import IReactorTime

from llmedge.config import Config, ProviderConfig, RoutePolicy, Target
from llmedge.errors import model_not_found
from llmedge.providers.base import IProvider
from llmedge.providers.client import HTTP11Client
from llmedge.providers.anthropic import AnthropicProvider
from llmedge.providers.mock import MockProvider
from llmedge.providers.openai import OpenAIProvider
from llmedge.providers.upstream import Bounds, Upstream
from llmedge.routing.attempts import Route, Target as RouteTarget
from llmedge.routing.health import Health


class Router:
    """
    Maps public model names to their L{Route}s: the deployments that serve
    each, and how to choose among them.

    @param models: public name to targets, in configured order.
    @param providers: provider name to provider.
    @param created: the Unix time reported as each model's C{created}.
    @param health: every deployment's state, kept across reloads.
    @param policies: public name to its strategy and attempts (default:
        ordered, one attempt per target).
    @param rng: the randomness of the weighted and latency strategies and of
        the backoff.
    @param backoff: the base of the jittered backoff between rounds.
    """

    def __init__(
        self,
        models: Mapping[str, Sequence[Target]],
        providers: Mapping[str, IProvider],
        created: int,
        health: Health | None = None,
        policies: Mapping[str, RoutePolicy] | None = None,
        rng: random.Random | None = None,
        backoff: float = 0.25,
    ) -> None:
        self.health = health if health is not None else Health(_Never(), cooldown=0)
        policies = policies or {}
        self._routes = {
            name: _route(name, targets, providers, self.health, policies.get(name))
            for name, targets in models.items()
        }
        self.health.keep({(t.provider, t.model) for targets in models.values() for t in targets})
        self._created = created
        self._created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        self.providers = dict(providers)
        self.rng = rng if rng is not None else random.Random()
        self.backoff = backoff

    def route(self, model: str) -> Route:
        """
        The route of C{model}.

        @raise llmedge.errors.APIError: 404 C{model_not_found}.
        """
        try:
            return self._routes[model]
        except KeyError:
            raise model_not_found(model) from None

    def describe(self, model: str) -> dict[str, Any]:
        """
        The C{model} object for one public name, in OpenAI's shape and
        Anthropic's at once (C{type}, C{display_name}, C{created_at}): the
        two SDKs read the same C{GET /v1/models}, and each ignores the
        other's fields, so one document serves both without guessing which
        client asks.

        @raise llmedge.errors.APIError: 404 C{model_not_found}.
        """
        first = self.route(model).targets[0]
        return {
            "id": model,
            "object": "model",
            "created": self._created,
            "owned_by": first.provider.name,
            "type": "model",
            "display_name": model,
            "created_at": self._created_at,
        }

    def list_models(self) -> dict[str, Any]:
        """
        The list of every public model name, sorted by name, as OpenAI's
        C{list} and Anthropic's page (C{has_more}, C{first_id},
        C{last_id}) at once.
        """
        names = sorted(self._routes)
        return {
            "object": "list",
            "data": [self.describe(name) for name in names],
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }


def _route(name: str, targets: Sequence[Target], providers: Mapping[str, IProvider],
           health: Health, policy: RoutePolicy | None) -> Route:
    policy = policy or RoutePolicy()
    routed = tuple(
        RouteTarget(providers[t.provider], t.model, t.weight, health.deployment(t.provider, t.model))
        for t in targets)
    return Route(name, routed, policy.strategy, policy.max_attempts or len(routed), policy.cache)


class _Never:
    """
    A clock for a breaker that never opens (cooldown 0).
    """

    def seconds(self) -> float:
        return 0.0


def _build_provider(reactor, spec: ProviderConfig, clients: ClientFactory,
                    bounds: Bounds) -> IProvider:
    options = dict(spec.options)
    if spec.kind == "mock":
        return MockProvider(reactor, name=spec.name, **options)
    bounds = replace(
        bounds,
        response=options.pop("max_response_bytes", bounds.response),
        event=options.pop("max_event_bytes", bounds.event),
    )
    upstream = Upstream(
        spec.name, clients(options.pop("connect_timeout", 10.0)), reactor,
        options.pop("headers", None), options.pop("first_byte_timeout", 60.0), bounds,
    )
    base_url = options.pop("base_url")
    options.pop("api_key_env", None)
    if spec.kind == "openai":
        return OpenAIProvider(upstream, base_url, spec.api_key,
                              responses=options.pop("responses", False))
    return AnthropicProvider(upstream, base_url, spec.api_key, **options)


def upstream_bounds(config: Config) -> Bounds:
    """
    The bounds on what upstreams may send, from the C{[upstream]} settings
    (a provider's table may raise or lower its own answer and event bounds).
    """
    return Bounds(
        response=config["upstream.max_response_bytes"],
        error=config["upstream.max_error_bytes"],
        event=config["upstream.max_event_bytes"],
        header_value=config["upstream.max_header_value_bytes"],
    )


ClientFactory = Callable[[float], HTTP11Client]


def build_router(config: Config, reactor: IReactorTime, clients: ClientFactory | None = None,
                 health: Health | None = None) -> Router:
    """
    Make every configured provider and the router over them.

    @param clients: makes the HTTP client of a provider, given its connect
        timeout; the service's share one connection pool.
    @param health: what is known of the deployments already (a reload):
        kept for those still configured, with the new breaker settings.
    """
    if clients is None:
        clients = _no_upstreams
    bounds = upstream_bounds(config)
    providers = {
        name: _build_provider(reactor, spec, clients, bounds)
        for name, spec in config.providers.items()
    }
    threshold, cooldown = config["upstream.breaker_failures"], config["upstream.cooldown_seconds"]
    if health is None:
        health = Health(reactor, threshold, cooldown)
    else:
        health.configure(threshold, cooldown)
    return Router(config.models, providers, int(reactor.seconds()), health, config.policies,
                  backoff=config["upstream.retry_backoff_seconds"])


def _no_upstreams(connect_timeout: float) -> HTTP11Client:
    raise ValueError("upstream providers need a client factory")
