"""
The cache store the settings ask for (llmedge.cache.configured).
"""

import pytest
from twisted.internet.task import Clock

from llmedge.cache.configured import build_store, max_entry, redis_url
from llmedge.cache.memory import MemoryCache
from llmedge.cache.redis import RedisCache
from llmedge.config import ConfigError, load


def config(**environ):
    return load(environ)


def test_no_store_when_the_cache_is_off():
    assert build_store(config(), Clock()) is None


def test_the_memory_backend_is_bounded_by_max_bytes():
    store = build_store(config(CACHE_ENABLED="true", CACHE_MAX_BYTES="100000"), Clock())
    assert isinstance(store, MemoryCache)
    assert store.max_bytes == 100000


def test_redis_defaults_to_the_rate_limits_redis():
    settings = config(CACHE_ENABLED="true", CACHE_BACKEND="redis",
                      REDIS_URL="redis://10.0.0.9:6380/2")
    assert redis_url(settings) == ("redis://10.0.0.9:6380/2", "REDIS_URL")
    store = build_store(settings, Clock())
    assert isinstance(store, RedisCache)
    assert (store.address.host, store.address.port) == ("10.0.0.9", 6380)


def test_the_caches_own_redis_wins_and_its_timeout_is_the_rate_limits():
    settings = config(CACHE_ENABLED="true", CACHE_BACKEND="redis",
                      CACHE_REDIS_URL="redis://10.0.0.8:6381/0", REDIS_TIMEOUT_SECONDS="0.5")
    store = build_store(settings, Clock())
    assert (store.address.host, store.address.port) == ("10.0.0.8", 6381)
    assert store.timeout == 0.5


def test_a_bad_redis_url_names_the_setting_and_hides_the_password():
    settings = config(CACHE_ENABLED="true", CACHE_BACKEND="redis",
                      CACHE_REDIS_URL="http://user:secret@host/0")
    with pytest.raises(ConfigError) as caught:
        build_store(settings, Clock())
    assert str(caught.value).startswith("CACHE_REDIS_URL=<redacted>")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("environ,bound", [
    ({}, 64 * 1024 * 1024),
    ({"CACHE_MAX_BYTES": "100000"}, 100000),
    ({"UPSTREAM_MAX_RESPONSE_BYTES": "50000"}, 50000),
    ({"CACHE_BACKEND": "redis", "CACHE_MAX_BYTES": "100000"}, 64 * 1024 * 1024),
])
def test_an_entry_is_no_larger_than_an_answer_or_the_memory_cache(environ, bound):
    assert max_entry(config(CACHE_ENABLED="true", **environ)) == bound


@pytest.mark.parametrize("name,value", [
    ("CACHE_BACKEND", "disk"), ("CACHE_SCOPE", "tenant"), ("CACHE_TTL_SECONDS", "0"),
    ("CACHE_MAX_BYTES", "10"), ("CACHE_WAIT_SECONDS", "-1"), ("CACHE_ENABLED", "maybe"),
])
def test_a_bad_cache_setting_stops_start_up_naming_it(name, value):
    with pytest.raises(ConfigError) as caught:
        load({name: value})
    assert name in str(caught.value) and "\n" not in str(caught.value)
