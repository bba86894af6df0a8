# -*- test-case-name: tests.unit.test_config -*-
"""
llmedge's configuration: defaults < TOML file < environment < command line.

L{load} reads the layers in that order using the declarations in
L{llmedge.settings}, and checks the tables (providers, models, keys) whose
shape a flat setting cannot express. A bad value raises L{ConfigError},
whose text is the one line an operator sees before the daemon refuses to
start: the setting, where it came from, and the value (never a secret).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from twisted.internet.endpoints import quoteStringArgument

from llmedge.settings import KEY_FIELDS, PROVIDER_KINDS, SETTINGS, address


class ConfigError(Exception):
    """
    A setting has a value llmedge cannot run with; C{str()} is the one-line
    explanation (line breaks from names in the file are escaped).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


_BY_PLACE = {(s.section, s.key): s for s in SETTINGS}
_SECTIONS = {s.section for s in SETTINGS}
_TABLES = ("providers", "models")


@dataclass(frozen=True)
class Target:
    """
    One place a public model name is served: a provider and its model name,
    and its C{weight} for the C{weighted} strategy.
    """

    provider: str
    model: str
    weight: float = 1.0


#: The routing strategies a model may name (L{llmedge.routing.strategies}).
STRATEGIES = ("ordered", "weighted", "least-busy", "latency")


@dataclass(frozen=True)
class RoutePolicy:
    """
    How one public model's targets are chosen: its C{strategy}
    (L{llmedge.routing.strategies}) and the most attempts a request makes
    (L{None}: one per target).
    """

    strategy: str = "ordered"
    max_attempts: int | None = None
    cache: bool = True


@dataclass(frozen=True)
class ProviderConfig:
    """
    One C{[providers.NAME]} table. C{api_key} is read from the environment
    variable C{api_key_env} names, and never shown.
    """

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)


DEFAULT_PROVIDERS = MappingProxyType({"mock": ProviderConfig("mock", "mock")})
DEFAULT_MODELS = MappingProxyType({"mock": (Target("mock", "mock"),)})


@dataclass(frozen=True)
class Config:
    """
    The effective configuration. C{values} holds every setting by its
    dotted name (C{config["server.timeout_seconds"]}).

    @ivar listen: the endpoint strings to serve on.
    @ivar listen_origin: which setting chose them, for error messages.
    """

    values: Mapping[str, Any]
    listen: tuple[str, ...]
    listen_origin: str = "--listen"
    providers: Mapping[str, ProviderConfig] = field(default_factory=lambda: DEFAULT_PROVIDERS)
    models: Mapping[str, tuple[Target, ...]] = field(default_factory=lambda: DEFAULT_MODELS)
    policies: Mapping[str, RoutePolicy] = field(default_factory=lambda: MappingProxyType({}))
    auth_keys: tuple[Mapping[str, Any], ...] = ()
    source: str | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def timeout_seconds(self) -> float:
        return self.values["server.timeout_seconds"]

    @property
    def max_request_size(self) -> int:
        return self.values["server.max_request_size"]


def load(
    environ: Mapping[str, str] | None = None,
    path: str | None = None,
    listen: Sequence[str] = (),
    path_origin: str = "--config",
) -> Config:
    """
    Build the effective configuration from a TOML file (optional), the
    environment and the command line's C{--listen} endpoints.

    @param path_origin: how the file was named (C{--config} or
        C{LLMEDGE_CONFIG}), for error messages.
    @raise ConfigError: naming the first bad setting.
    """
    environ = os.environ if environ is None else environ
    document = _read_toml(path, path_origin) if path else {}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw, where = setting.default, None
        if setting.key in document.get(setting.section, {}):
            raw, where = document[setting.section][setting.key], (setting.name, f" in {path}")
        if setting.env and setting.env in environ:
            raw, where = environ[setting.env], (setting.env, "")
        if where is None:
            values[setting.name] = raw
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as e:
            shown = "<redacted>" if setting.secret else _show(raw)
            raise ConfigError(f"{where[0]}={shown}{where[1]}: {e}") from None
    if isinstance(values["server.address"], str):
        values["server.address"] = address(values["server.address"])
    listeners, origin = _listeners(values, tuple(listen), "SERVER_ADDRESS" in environ)
    models, policies = _models(document.get("models"), document.get("providers"), path)
    return Config(
        values=MappingProxyType(values),
        listen=listeners,
        listen_origin=origin,
        providers=_providers(document.get("providers"), path, environ),
        models=models,
        policies=policies,
        auth_keys=_auth_keys(document.get("auth", {}).get("keys"), path),
        source=path,
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_toml(path: str, origin: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{origin}={path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}={path}: not valid TOML: not UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{origin}={path}: not valid TOML: {e}") from None
    for section, table in document.items():
        if section not in _SECTIONS and section not in _TABLES:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        if section in _TABLES:
            continue
        for key in table:
            if (section, key) not in _BY_PLACE and (section, key) != ("auth", "keys"):
                raise ConfigError(f"{path}: unknown setting {section}.{key}")
    return document


def _listeners(
    values: dict[str, Any], cli: tuple[str, ...], from_env: bool
) -> tuple[tuple[str, ...], str]:
    """
    Decide the endpoint strings and which setting chose them: C{--listen}
    wins, then C{SERVER_ADDRESS} from the environment, then C{server.listen}
    from the file, then the default address. The C{tls.*} settings turn
    the address into an C{ssl:} endpoint; explicit endpoints say their own
    TLS.
    """
    if cli:
        return cli, "--listen"
    if values["server.listen"] and not from_env:
        return values["server.listen"], "server.listen"
    host, port = values["server.address"]
    interface = f":interface={quoteStringArgument(host)}" if host else ""
    if not values["tls.enabled"]:
        return (f"tcp:{port}{interface}",), "SERVER_ADDRESS"
    for name in ("tls.cert_path", "tls.key_path"):
        if not values[name]:
            env = _BY_PLACE[tuple(name.split("."))].env
            raise ConfigError(f"{env}: required when ENABLE_TLS is true")
    endpoint = (
        f"ssl:{port}{interface}"
        f":privateKey={quoteStringArgument(values['tls.key_path'])}"
        f":certKey={quoteStringArgument(values['tls.cert_path'])}"
    )
    return (endpoint,), "ENABLE_TLS"


def _parse_table(spec: dict, fields: Mapping, where: str, path: str | None,
                 secret: frozenset[str] = frozenset()) -> dict[str, Any]:
    parsed = {}
    for key, value in spec.items():
        parse = fields.get(key)
        if parse is None:
            raise ConfigError(f"{path}: unknown setting {where}.{key}")
        try:
            parsed[key] = parse(value)
        except ValueError as e:
            shown = "<redacted>" if key in secret else _show(value)
            raise ConfigError(f"{where}.{key}={shown} in {path}: {e}") from None
    return parsed


def _providers(
    table: Any, path: str | None, environ: Mapping[str, str]
) -> Mapping[str, ProviderConfig]:
    if table is None:
        return DEFAULT_PROVIDERS
    providers = dict(DEFAULT_PROVIDERS)
    for name, spec in table.items():
        where = f"providers.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: {where} must be a table")
        kind = spec.get("kind")
        if not isinstance(kind, str) or kind not in PROVIDER_KINDS:
            raise ConfigError(
                f"{where}.kind={_show(kind)} in {path}: must be one of "
                f"{', '.join(PROVIDER_KINDS)}"
            )
        options = {k: v for k, v in spec.items() if k != "kind"}
        options = _parse_table(options, PROVIDER_KINDS[kind], where, path)
        if "base_url" in PROVIDER_KINDS[kind] and "base_url" not in options:
            raise ConfigError(f"{path}: {where}.base_url is required for kind {kind!r}")
        api_key = None
        if "api_key_env" in options:
            api_key = environ.get(options["api_key_env"]) or None
            if api_key is None:
                raise ConfigError(
                    f"{where}.api_key_env={options['api_key_env']!r} in {path}: "
                    "that environment variable is not set"
                )
        providers[name] = ProviderConfig(name, kind, MappingProxyType(options), api_key)
    return MappingProxyType(providers)


#: What a C{[models."NAME"]} table may hold besides C{targets}.
_MODEL_KEYS = {"targets", "strategy", "max_attempts", "cache"}


def _models(
    table: Any, providers: Any, path: str | None
) -> tuple[Mapping[str, tuple[Target, ...]], Mapping[str, RoutePolicy]]:
    if table is None:
        return DEFAULT_MODELS, MappingProxyType({})
    known = set(DEFAULT_PROVIDERS) | set(providers or ())
    if not table:
        raise ConfigError(f"{path}: [models] must name at least one model")
    models, policies = {}, {}
    for name, spec in table.items():
        where = f'models."{name}"'
        if not isinstance(spec, dict) or "targets" not in spec or not set(spec) <= _MODEL_KEYS:
            raise ConfigError(
                f"{path}: {where} must be a table of 'targets' and optionally 'strategy', "
                "'max_attempts' and 'cache'")
        targets = spec["targets"]
        if not isinstance(targets, list) or not targets:
            raise ConfigError(f"{where}.targets in {path}: must be a non-empty list")
        parsed = [_target(target, f"{where}.targets[{i}]", path, known)
                  for i, target in enumerate(targets)]
        models[name] = tuple(parsed)
        policies[name] = _policy(spec, where, path)
    return MappingProxyType(models), MappingProxyType(policies)


def _target(target: Any, where: str, path: str | None, known: set[str]) -> Target:
    if (
        not isinstance(target, dict)
        or not {"provider", "model"} <= set(target) <= {"provider", "model", "weight"}
        or not all(isinstance(target[k], str) and target[k] for k in ("provider", "model"))
    ):
        raise ConfigError(
            f"{where} in {path}: must be "
            '{ provider = "...", model = "..." } (and optionally weight = N)'
        )
    if target["provider"] not in known:
        raise ConfigError(
            f"{where}.provider={target['provider']!r} in {path}: no such provider"
        )
    weight = target.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) \
            or not 0 < weight < float("inf"):
        raise ConfigError(f"{where}.weight={_show(weight)} in {path}: must be a positive number")
    return Target(target["provider"], target["model"], float(weight))


def _policy(spec: dict, where: str, path: str | None) -> RoutePolicy:
    strategy = spec.get("strategy", "ordered")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"{where}.strategy={_show(strategy)} in {path}: must be one of "
            f"{', '.join(STRATEGIES)}")
    attempts = spec.get("max_attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)
                                 or not 1 <= attempts <= 20):
        raise ConfigError(f"{where}.max_attempts={_show(attempts)} in {path}: "
                          "must be a whole number from 1 to 20")
    cache = spec.get("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"{where}.cache={_show(cache)} in {path}: must be true or false")
    return RoutePolicy(strategy, attempts, cache)


def _auth_keys(keys: Any, path: str | None) -> tuple[Mapping[str, Any], ...]:
    """
    Check the shape of C{[[auth.keys]]}; enforcing them is the auth
    wrapper's job.
    """
    if keys is None:
        return ()
    if not isinstance(keys, list):
        raise ConfigError(f"{path}: auth.keys must be an array of tables ([[auth.keys]])")
    parsed = []
    for i, spec in enumerate(keys):
        where = f"auth.keys[{i}]"
        if not isinstance(spec, dict) or "key" not in spec:
            raise ConfigError(f"{path}: {where} must be a table with a 'key'")
        entry = _parse_table(spec, KEY_FIELDS, where, path, secret=frozenset({"key"}))
        parsed.append(MappingProxyType(entry))
    return tuple(parsed)
