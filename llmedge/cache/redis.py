# -*- test-case-name: tests.unit.test_cache_redis -*-
"""
The response cache shared by many llmedge instances, in Redis.

Instances behind one load balancer each keeping their own cache would each
pay the provider once for the same answer; with this backend an answer one
instance paid for is a hit on all of them. Redis does the expiry (every
entry is written with C{SET key value PX ttl}), so nothing here sweeps, and
Redis's own C{maxmemory} policy bounds what it holds.

Keys are C{KEY_PREFIX} followed by the caller's key (a hex digest made by
L{llmedge.cache.key}, never a body), so the database can be shared with the
rate limits and other users.

Stored format, one byte of marker and then the payload::

    b"r" + value                  the value as given (small, or not helped
                                  by compression)
    b"z" + zlib.compress(value)   values longer than C{compress_over} bytes
                                  (1024 by default) that compression made
                                  smaller

Answers are JSON, which compresses several times over; the marker lets
C{get} tell the two apart without guessing. A stored value with another
marker, a zlib stream that does not decode, or one that inflates past
C{max_value} bytes (a bound on what a peer sharing the database can make
this process allocate) is taken as absent: C{get} answers L{None}, the
first such value is logged, later ones only counted.

When Redis cannot answer, because it is unreachable, slow (every call is
bounded by C{timeout} seconds on the injected reactor) or failing, the call
fails with L{CacheUnavailable} and the caller goes upstream (bypass). Once
the first connection has been made (or the start-up probe gave up), a call
made while no connection is up fails at once, without waiting for the
timeout. One line is logged when Redis becomes unavailable and one when it
is back, never one per request. The connection and its reconnecting are the
rate-limit store's (L{llmedge.redis_connection}), so both behave alike.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from llmedge.cache.store import CacheUnavailable, ICacheStore
from llmedge.redis_connection import RedisAddress, RedisService, connect, connected

#: Prefix of every cache key llmedge writes.
KEY_PREFIX = "llmedge:cache:"
#: Values longer than this many bytes are stored compressed.
COMPRESS_OVER = 1024
#: The largest value C{get} will inflate a compressed entry to.
MAX_VALUE = 64 * 1024 * 1024
#: zlib's fastest level: compressing runs on the reactor thread at every
#: miss, and JSON compresses well even at this level.
COMPRESS_LEVEL = 1

RAW = b"r"
ZLIB = b"z"


def encode(value: bytes, compress_over: int = COMPRESS_OVER) -> bytes:
    """
    The stored form of C{value} (see the module's docstring): compressed
    when it is long and compression makes it shorter.
    """
    if len(value) > compress_over:
        packed = zlib.compress(value, COMPRESS_LEVEL)
        if len(packed) < len(value):
            return ZLIB + packed
    return RAW + value


def decode(stored: bytes, max_value: int = MAX_VALUE) -> bytes:
    """
    The value C{stored} holds.

    @raise ValueError: C{stored} is not something L{encode} wrote, or would
        inflate past C{max_value} bytes.
    """
    marker, payload = stored[:1], stored[1:]
    if marker == RAW:
        return payload
    if marker != ZLIB:
        raise ValueError(f"unknown marker {marker!r}")
    inflater = zlib.decompressobj()
    try:
        value = inflater.decompress(payload, max_value)
    except zlib.error as e:
        raise ValueError(f"bad zlib data: {e}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"inflates past {max_value} bytes")
    if not inflater.eof:
        raise ValueError("truncated zlib data")
    return value


@implementer(ICacheStore)
class RedisCache(RedisService):
    """
    An L{ICacheStore} keeping entries in Redis, with Redis's expiry.

    As a L{Service}, it connects when started and closes its connection
    when stopped.

    @param compress_over: values longer than this are stored compressed.
    @param max_value: the largest value a compressed entry may inflate to.
    @param connect: makes the connection handler; the rate-limit store's
        L{connect} unless a test gives another.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        address: RedisAddress,
        timeout: float = 0.25,
        compress_over: int = COMPRESS_OVER,
        max_value: int = MAX_VALUE,
        connect: Callable = connect,
    ) -> None:
        super().__init__(clock, address, timeout, connect)
        self.compress_over = compress_over
        self.max_value = max_value
        # Until the first connection (or the probe giving up), calls wait
        # for it; afterwards no connection means unavailable at once.
        self._settled = False
        self._unavailable = 0
        self._corrupt = 0

    def _probed(self, _) -> None:
        self._settled = True

    def get(self, key: str) -> Deferred[bytes | None]:
        """
        See L{ICacheStore.get}. A stored value that does not decode is
        absent (L{None}), never an error.
        """
        d = self._call(lambda redis: redis.get(KEY_PREFIX + key))
        return d.addCallback(self._got, key)

    def put(self, key: str, value: bytes, ttl: float) -> Deferred[None]:
        """
        See L{ICacheStore.put}: C{SET key value PX ttl}, so Redis expires
        the entry. A non-positive C{ttl} stores nothing (the contract's
        "decline"); an infinite one stores without expiry.
        """
        if not ttl > 0:
            return succeed(None)
        stored = encode(value, self.compress_over)
        expiry = {} if math.isinf(ttl) else {"pexpire": max(1, math.ceil(ttl * 1000))}
        d = self._call(lambda redis: redis.set(KEY_PREFIX + key, stored, **expiry))
        return d.addCallback(lambda _: None)

    def stats(self) -> dict:
        """
        See L{ICacheStore.stats}. Redis holds the entries, so C{bytes},
        C{entries} and C{evictions} are zeros; this process counts the calls
        that failed with L{CacheUnavailable} (C{unavailable}) and the stored
        values that did not decode (C{corrupt}).
        """
        return {"bytes": 0, "entries": 0, "evictions": 0,
                "unavailable": self._unavailable, "corrupt": self._corrupt}

    def _call(self, command: Callable) -> Deferred:
        """
        Run C{command(redis)} bounded by the timeout, any failure of it
        becoming L{CacheUnavailable}; failed at once when Redis is known
        to be out of reach.
        """
        redis = self._redis
        if redis is None or not (connected(redis) or (self.available and not self._settled)):
            self._unavailable += 1
            self._failed(None)
            return fail(CacheUnavailable(f"Cache Redis {self.address} is unavailable"))
        d = command(redis)
        d.addTimeout(self.timeout, self._clock)
        return d.addCallbacks(self._answered, self._give_up)

    def _answered(self, reply):
        self._succeeded()
        return reply

    def _give_up(self, failure: Failure) -> Failure:
        self._unavailable += 1
        self._failed(failure)
        return Failure(CacheUnavailable(f"Cache Redis {self.address} is unavailable"))

    def _got(self, stored, key: str) -> bytes | None:
        """
        The value C{stored} holds, or L{None} when there is none or it does
        not decode.
        """
        if stored is None:
            return None
        if isinstance(stored, str):
            # txredisapi hands back as text whatever decodes as UTF-8;
            # encoding it again gives exactly the bytes Redis holds.
            stored = stored.encode("utf-8")
        try:
            return decode(stored, self.max_value)
        except ValueError as e:
            self._corrupt += 1
            if self._corrupt == 1:
                self._log.warn(
                    "Cache Redis {redis} holds a value that does not decode ({reason}), "
                    "at {key}: taken as absent (later ones are only counted)",
                    redis=str(self.address), reason=str(e), key=KEY_PREFIX + key)
            return None

    def _succeeded(self) -> None:
        self._settled = True
        if not self.available:
            self.available = True
            self._log.info("Cache Redis {redis} is back: responses are cached again",
                           redis=str(self.address))

    def _failed(self, failure: Failure | None, waited: float | None = None) -> None:
        if not self.available:
            return
        self.available = False
        if failure is None:
            reason = "not connected"
        elif failure.check(TimeoutError):
            reason = f"no answer within {waited or self.timeout:g} s"
        else:
            reason = failure.getErrorMessage() or failure.type.__name__
        self._log.error(
            "Cache Redis {redis} is unavailable ({reason}): requests go upstream "
            "uncached until it answers again",
            redis=str(self.address), reason=reason)
