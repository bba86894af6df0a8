# -*- test-case-name: tests.unit.test_router -*-
"""
The router: which provider answers a public model name.

Clients name models by the public names the operator configured (C{[models]}
in the TOML file); each name maps to an ordered list of targets, a provider
and the model name that provider knows. Keeping this mapping in one object
lets C{/v1/models} list exactly what the request handlers will accept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime

from llmedge.config import Config, ProviderConfig, Target
from llmedge.errors import model_not_found
from llmedge.providers.base import IProvider
from llmedge.providers.mock import MockProvider


class Router:
    """
    Maps public model names to C{(provider, upstream model)} pairs.

    @param models: public name to targets, in the order to try them.
    @param providers: provider name to provider.
    @param created: the Unix time reported as each model's C{created}.
    """

    def __init__(
        self,
        models: Mapping[str, Sequence[Target]],
        providers: Mapping[str, IProvider],
        created: int,
    ) -> None:
        self._routes = {
            name: tuple((providers[t.provider], t.model) for t in targets)
            for name, targets in models.items()
        }
        self._created = created

    def route(self, model: str) -> tuple[tuple[IProvider, str], ...]:
        """
        The targets for C{model}, first choice first.

        @raise llmedge.errors.APIError: 404 C{model_not_found}.
        """
        try:
            return self._routes[model]
        except KeyError:
            raise model_not_found(model) from None

    def describe(self, model: str) -> dict[str, Any]:
        """
        The OpenAI C{model} object for one public name.

        @raise llmedge.errors.APIError: 404 C{model_not_found}.
        """
        provider, _ = self.route(model)[0]
        return {
            "id": model,
            "object": "model",
            "created": self._created,
            "owned_by": provider.name,
        }

    def list_models(self) -> dict[str, Any]:
        """
        The OpenAI C{list} of every public model name, sorted by name.
        """
        return {
            "object": "list",
            "data": [self.describe(name) for name in sorted(self._routes)],
        }


def _build_provider(reactor: IReactorTime, spec: ProviderConfig) -> IProvider:
    if spec.kind == "mock":
        return MockProvider(reactor, name=spec.name, **spec.options)
    raise ValueError(f"unknown provider kind {spec.kind!r}")  # config rejects these


def build_router(config: Config, reactor: IReactorTime) -> Router:
    """
    Make every configured provider and the router over them.
    """
    providers = {
        name: _build_provider(reactor, spec) for name, spec in config.providers.items()
    }
    return Router(config.models, providers, created=int(reactor.seconds()))
