# -*- test-case-name: tests.unit.test_config -*-
"""
Every scalar setting llmedge has, declared once: its place in the TOML file,
its environment variable, its parser and its default.

One table means the file, the environment and the README cannot drift
apart (a test checks the README against L{SETTINGS}). Parsers take a raw
value (a string from the environment, a typed value from TOML) and return
the parsed value or raise C{ValueError} with the reason; L{llmedge.config}
turns that into the one-line error the operator sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"from {low} to {high}"
            raise ValueError(f"must be {span}")
        return value

    return parse


def seconds(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number of seconds")
    return float(value)


def seconds_or_zero(value: Any) -> float:
    if isinstance(value, str) and value.strip() in ("0", "0.0"):
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    return seconds(value)


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in allowed:
            return value.strip().lower()
        raise ValueError(f"must be one of {', '.join(allowed)}")

    return parse


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def comma_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) for v in value
    ):
        raise ValueError("must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def listen_list(value: Any) -> tuple[str, ...]:
    items = comma_list(value) if isinstance(value, list | tuple) else None
    if not items:
        raise ValueError("must be a non-empty list of endpoint strings")
    return items


def path_list(value: Any) -> tuple[str, ...]:
    paths = comma_list(value)
    for path in paths:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} must start with /")
    return paths


def address(value: Any) -> tuple[str, int]:
    """
    Parse C{host:port} (C{[v6]:port} for IPv6) as C{SERVER_ADDRESS} gives it.
    """
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("must be host:port")
    host, _, port_text = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text) if port_text.strip().isdigit() else -1
    if not 0 <= port <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return host, port


@dataclass(frozen=True)
class Setting:
    """
    One scalar setting: where it lives in the TOML file, its environment
    variable (if any), its parser and its default.
    """

    section: str
    key: str
    env: str | None
    parse: Callable[[Any], Any]
    default: Any
    doc: str = ""
    secret: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


SETTINGS: tuple[Setting, ...] = (
    Setting("server", "address", "SERVER_ADDRESS", address, "0.0.0.0:8080",
            "host:port to listen on when no listen endpoints are given"),
    Setting("server", "listen", None, listen_list, (),
            "Twisted endpoint strings; --listen replaces this list"),
    Setting("server", "timeout_seconds", "SERVER_TIMEOUT_SECONDS", seconds, 30.0,
            "deadline for a whole request"),
    Setting("server", "workers", "WORKERS", integer(0, 64), 0,
            "worker processes sharing the listeners (0: serve in this process)"),
    Setting("server", "max_request_size", "MAX_REQUEST_SIZE", integer(1), 10485760,
            "largest request body accepted, in bytes"),
    Setting("server", "header_timeout_seconds", "SERVER_HEADER_TIMEOUT_SECONDS",
            seconds_or_zero, 20.0,
            "seconds a request's line and headers may take in all (0: no bound)"),
    Setting("server", "body_timeout_seconds", "SERVER_BODY_TIMEOUT_SECONDS",
            seconds_or_zero, 60.0,
            "seconds a request's body may take in all (0: no bound)"),
    Setting("server", "max_connections", "SERVER_MAX_CONNECTIONS", integer(0), 10000,
            "client connections served at once per process (0: no bound)"),
    Setting("server", "http2_max_concurrent_streams", "SERVER_HTTP2_MAX_CONCURRENT_STREAMS",
            integer(1, 1000), 100, "streams one HTTP/2 connection may have open at once"),
    Setting("auth", "enabled", "AUTH_ENABLED", boolean, True,
            "require an API key on /v1"),
    Setting("auth", "api_keys", "API_KEYS", comma_list, (),
            "unnamed keys, plain or sha256:<hex>", secret=True),
    Setting("auth", "health_check", "AUTH_HEALTH_CHECK", boolean, False,
            "require a key on /health and /metrics too"),
    Setting("auth", "public_paths", "AUTH_PUBLIC_PATHS", path_list, ("/health", "/metrics"),
            "path prefixes served without a key"),
    Setting("rate_limit", "enabled", "RATE_LIMIT_ENABLED", boolean, True,
            "limit requests per key"),
    Setting("rate_limit", "rpm", "RATE_LIMIT_RPM", integer(1), 1000,
            "requests per minute per key"),
    Setting("rate_limit", "burst", "RATE_LIMIT_BURST", integer(1), 100,
            "requests a key may send at once"),
    Setting("rate_limit", "backend", "RATE_LIMIT_BACKEND", choice("memory", "redis"),
            "memory", "where limit state lives"),
    Setting("rate_limit", "redis_url", "REDIS_URL", text, "redis://127.0.0.1:6379/0",
            "Redis for the redis backend", secret=True),
    Setting("rate_limit", "redis_timeout", "REDIS_TIMEOUT_SECONDS", seconds, 0.25,
            "longest one rate-limit decision may wait on Redis"),
    Setting("rate_limit", "redis_failure", "REDIS_FAILURE_POLICY",
            choice("fail-open", "fail-closed"), "fail-open",
            "what to do when Redis cannot decide: admit (fail-open) or refuse with 503"),
    Setting("server", "stream_keepalive_seconds", "STREAM_KEEPALIVE_SECONDS",
            seconds_or_zero, 15.0,
            "SSE comment sent while a stream waits for its first token (0: never)"),
    Setting("upstream", "pool_size", "UPSTREAM_POOL_SIZE", integer(1), 128,
            "idle connections kept per upstream host"),
    Setting("upstream", "idle_timeout", "UPSTREAM_IDLE_TIMEOUT", seconds, 240.0,
            "seconds an idle upstream connection is kept"),
    Setting("upstream", "ca_bundle", "UPSTREAM_CA_BUNDLE", text, "",
            "PEM file of CAs to verify upstreams with (default: the system's)"),
    Setting("upstream", "cooldown_seconds", "UPSTREAM_COOLDOWN_SECONDS", seconds_or_zero, 10.0,
            "seconds an open circuit breaker waits before letting one probe through"),
    Setting("upstream", "breaker_failures", "UPSTREAM_BREAKER_FAILURES", integer(1, 1000), 3,
            "consecutive failures of a deployment that open its circuit breaker"),
    Setting("upstream", "retry_backoff_seconds", "UPSTREAM_RETRY_BACKOFF_SECONDS",
            seconds_or_zero, 0.25, "base of the jittered backoff before a deployment is "
            "asked again within one request"),
    Setting("upstream", "max_response_bytes", "UPSTREAM_MAX_RESPONSE_BYTES", integer(1024),
            64 * 1024 * 1024, "largest upstream answer read, in bytes"),
    Setting("upstream", "max_error_bytes", "UPSTREAM_MAX_ERROR_BYTES", integer(1024), 65536,
            "largest upstream error body read, in bytes"),
    Setting("upstream", "max_event_bytes", "UPSTREAM_MAX_EVENT_BYTES", integer(1024),
            1024 * 1024, "largest upstream server-sent event read, in bytes"),
    Setting("upstream", "max_header_value_bytes", "UPSTREAM_MAX_HEADER_VALUE_BYTES",
            integer(16, 65536), 1024, "longest upstream header value relayed, in bytes"),
    Setting("log", "level", "LOG_LEVEL",
            choice("debug", "info", "warn", "warning", "error", "critical"), "info",
            "lowest level logged"),
    Setting("tracing", "enabled", "ENABLE_TRACING", boolean, True,
            "propagate W3C trace context"),
    Setting("tracing", "otlp_endpoint", "OTLP_ENDPOINT", text, "",
            "OTLP/HTTP collector to export spans to (needs llmedge[otel])", secret=True),
    Setting("metrics", "enabled", "ENABLE_METRICS", boolean, True,
            "serve /metrics"),
    Setting("tls", "enabled", "ENABLE_TLS", boolean, False,
            "serve server.address over TLS"),
    Setting("tls", "cert_path", "TLS_CERT_PATH", text, "",
            "PEM certificate (chain) for tls.enabled"),
    Setting("tls", "key_path", "TLS_KEY_PATH", text, "",
            "PEM private key for tls.enabled"),
    Setting("health", "probe_interval_seconds", "HEALTH_PROBE_INTERVAL_SECONDS",
            seconds_or_zero, 10.0,
            "seconds between TCP probes of each upstream provider for /health/ready (0: never)"),
    Setting("rate_limit", "max_concurrent_requests", "RATE_LIMIT_MAX_CONCURRENT_REQUESTS",
            integer(0), 0, "requests a key may have in flight at once (0: no bound)"),
    Setting("server", "shutdown_grace_seconds", "SHUTDOWN_GRACE_SECONDS", seconds_or_zero, 30.0,
            "on SIGTERM, how long requests in flight may take to finish"),
    Setting("rate_limit", "tokens_per_minute", "RATE_LIMIT_TPM", integer(0), 0,
            "tokens per minute per key, reserved up front and settled on usage (0: no limit)"),
    Setting("rate_limit", "default_max_tokens", "RATE_LIMIT_DEFAULT_MAX_TOKENS", integer(1), 4096,
            "completion tokens reserved for a request that sets no max_tokens"),
    Setting("cache", "enabled", "CACHE_ENABLED", boolean, False,
            "answer identical requests from the response cache"),
    Setting("cache", "backend", "CACHE_BACKEND", choice("memory", "redis"), "memory",
            "where answers are kept: this process, or Redis shared by every instance"),
    Setting("cache", "redis_url", "CACHE_REDIS_URL", text, "",
            "Redis for the redis backend (empty: rate_limit.redis_url)", secret=True),
    Setting("cache", "ttl_seconds", "CACHE_TTL_SECONDS", seconds, 3600.0,
            "how long an answer is kept"),
    Setting("cache", "max_bytes", "CACHE_MAX_BYTES", integer(65536), 268435456,
            "bytes the memory backend holds; the least recently used answer goes first"),
    Setting("cache", "scope", "CACHE_SCOPE", choice("key", "global"), "key",
            "whose answers a request may get: its own API key's, or every key's"),
    Setting("cache", "wait_seconds", "CACHE_WAIT_SECONDS", seconds_or_zero, 30.0,
            "how long identical requests wait for the first one's answer (0: never wait)"),
)

def url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    return value


def env_name(value: Any) -> str:
    if not isinstance(value, str) or not value or not value.replace("_", "").isalnum():
        raise ValueError("must be the name of an environment variable")
    return value


def header_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "\n" not in v
        for k, v in value.items()
    ):
        raise ValueError('must be a table of strings, e.g. { "OpenAI-Organization" = "org-1" }')
    return dict(value)


_UPSTREAM = {
    "base_url": url,
    "api_key_env": env_name,
    "headers": header_table,
    "connect_timeout": seconds,
    "first_byte_timeout": seconds,
    "max_response_bytes": integer(1024),
    "max_event_bytes": integer(1024),
}

#: Provider kinds this version can build, and the settings each accepts in
#: its C{[providers.NAME]} table (besides C{kind}); C{base_url} is required
#: for the upstream kinds.
PROVIDER_KINDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "mock": {
        "embedding_dimensions": integer(1, 16384),
        "stream_interval": seconds_or_zero,
        "latency": seconds_or_zero,
    },
    # responses: the server answers POST /responses itself (OpenAI does;
    # most compatible servers do not), so Responses requests pass through.
    "openai": {**_UPSTREAM, "responses": boolean},
    "anthropic": {**_UPSTREAM, "default_max_tokens": integer(1), "version": text},
}

#: The fields of one C{[[auth.keys]]} entry.
KEY_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": text,
    "key": text,
    "rpm": integer(1),
    "burst": integer(1),
    "tokens_per_minute": integer(1),
    "max_concurrent_requests": integer(1),
}
