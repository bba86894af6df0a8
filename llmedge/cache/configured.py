# -*- test-case-name: tests.unit.test_cache_configured -*-
"""
The cache store the configuration asks for (C{[cache]}).

The store outlives reloads (its entries, its Redis connection): it is made
once, at start-up, so C{cache.backend}, C{cache.redis_url} and
C{cache.max_bytes} take effect on restart, as the rate-limit store's
settings do.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from llmedge.cache.memory import MemoryCache
from llmedge.cache.store import ICacheStore
from llmedge.config import Config, ConfigError
from llmedge.redis_connection import parse_url


def redis_url(config: Config) -> tuple[str, str]:
    """
    The Redis the cache uses, and the setting it came from: its own, or
    the rate limits' when it names none.
    """
    if config["cache.redis_url"]:
        return config["cache.redis_url"], "CACHE_REDIS_URL"
    return config["rate_limit.redis_url"], "REDIS_URL"


def build_store(config: Config, reactor: IReactorTime) -> ICacheStore | None:
    """
    The cache's store, or L{None} when the cache is off.

    @raise ConfigError: for a Redis URL that does not parse (naming the
        setting, never showing a password).
    """
    if not config["cache.enabled"]:
        return None
    if config["cache.backend"] == "memory":
        return MemoryCache(reactor, config["cache.max_bytes"])
    from llmedge.cache.redis import RedisCache

    url, setting = redis_url(config)
    try:
        address = parse_url(url)
    except ValueError as e:
        shown = "<redacted>" if "@" in url else url
        raise ConfigError(f"{setting}={shown}: {e}") from None
    return RedisCache(reactor, address, timeout=config["rate_limit.redis_timeout"])


def max_entry(config: Config) -> int:
    """
    The largest entry kept: no more than llmedge reads of an upstream
    answer, and for the memory backend no more than the whole cache holds.
    """
    bound = config["upstream.max_response_bytes"]
    if config["cache.backend"] == "memory":
        bound = min(bound, config["cache.max_bytes"])
    return bound
