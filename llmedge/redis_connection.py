# -*- test-case-name: tests.unit.test_redis_store -*-
"""
A connection to Redis, as the rate-limit store and the response cache both
hold one: its address (C{REDIS_URL}, C{CACHE_REDIS_URL}), the txredisapi
handler, and its life as a service (connected and probed at start-up,
closed at stop).

The connection is txredisapi's lazy one: it connects in the background and
reconnects, backing off up to C{RECONNECT_MAX_DELAY} seconds, so a store
resumes by itself when Redis returns. txredisapi has no reactor parameter
and uses the global reactor for its sockets; the injected one keeps time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import txredisapi
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

#: Longest wait between two attempts to reconnect (txredisapi's is 10 s).
RECONNECT_MAX_DELAY = 2.0
#: Bound on opening a connection.
CONNECT_TIMEOUT = 5.0
#: How long the check made at start-up may take (it waits for the first
#: connection, which a decision's timeout is too short for).
PROBE_TIMEOUT = 5.0

_URL_SHAPE = (
    "must be redis://[[user]:password@]host[:port][/db], rediss://... (TLS) "
    "or unix:///path/to/redis.sock[?db=N]"
)


@dataclass(frozen=True)
class RedisAddress:
    """
    Where Redis is, as C{REDIS_URL} says. C{str()} never shows the password.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.db}"


def parse_url(url: str) -> RedisAddress:
    """
    Read a C{REDIS_URL}.

    @raise ValueError: with a reason that never repeats the password.
    """
    if not isinstance(url, str):
        raise ValueError(_URL_SHAPE)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(_URL_SHAPE)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs the socket's path: unix:///run/redis.sock")
        db = parse_qs(parts.query).get("db", ["0"])[-1]
    else:
        if not parts.hostname:
            raise ValueError(f"no host: {_URL_SHAPE}")
        db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database must be a number, not {db[:20]!r}")
    if scheme == "unix":
        return RedisAddress(db=int(db), username=username, password=password,
                            path=unquote(parts.path))
    return RedisAddress(parts.hostname, port or 6379, int(db), username, password,
                        tls=scheme == "rediss")


def connect(address: RedisAddress, reply_timeout: float):
    """
    A txredisapi connection handler to C{address} that connects in the
    background and reconnects whenever the connection is lost.

    @param reply_timeout: after this long without a reply, the connection
        is taken for dead, closed and made again; so a Redis that accepts
        and never answers does not pile up waiting commands forever.
    """
    options = dict(
        dbid=address.db or None,  # 0 needs no SELECT
        username=address.username,
        password=address.password,
        reconnect=True,
        convertNumbers=False,
        connectTimeout=CONNECT_TIMEOUT,
        replyTimeout=reply_timeout,
    )
    if address.path is not None:
        handler = txredisapi.lazyUnixConnection(address.path, **options)
    else:
        tls = False
        if address.tls:
            from twisted.internet.ssl import optionsForClientTLS

            tls = optionsForClientTLS(address.host)
        handler = txredisapi.lazyConnection(
            address.host, address.port, ssl_context_factory=tls, **options)
    handler._factory.maxDelay = RECONNECT_MAX_DELAY
    return handler


def connected(handler) -> bool:
    """
    Whether the handler has a live connection (txredisapi keeps the count
    on its factory; a handler that does not say is assumed connected).
    """
    factory = getattr(handler, "_factory", None)
    return getattr(factory, "size", 1) > 0


class RedisService(Service):
    """
    A connection to Redis as a service: connected when started (probed at
    once, so start-up says whether Redis answers rather than the first
    request), closed when stopped. What a store does with a probe's answer
    is its own: L{_succeeded}, L{_failed}, L{_probed}.
    """

    def __init__(self, clock: IReactorTime, address: RedisAddress, timeout: float,
                 connect: Callable) -> None:
        self._clock = clock
        self.address = address
        self.timeout = timeout
        self._connect = connect
        self._redis = None
        self._probe: Deferred | None = None
        #: L{False} from a failed call to Redis until the next one that
        #: succeeds.
        self.available = True

    def startService(self) -> None:
        Service.startService(self)
        self._redis = self._connect(self.address, max(2.0, 4 * self.timeout))
        self._probe = self._redis.ping()
        self._probe.addTimeout(PROBE_TIMEOUT, self._clock)
        self._probe.addCallbacks(lambda _: self._succeeded(), self._probe_failed)
        self._probe.addBoth(self._probed)

    def _probe_failed(self, failure: Failure) -> None:
        if self.running:  # not cancelled by stopService
            self._failed(failure, PROBE_TIMEOUT)

    def _probed(self, _) -> None:
        """
        The probe is over, answered or not.
        """

    def _succeeded(self) -> None:
        raise NotImplementedError

    def _failed(self, failure: Failure | None, waited: float | None = None) -> None:
        raise NotImplementedError

    def stopService(self) -> Deferred[None] | None:
        Service.stopService(self)
        redis, self._redis = self._redis, None
        if self._probe is not None:
            self._probe.cancel()
        if redis is None:
            return None
        return redis.disconnect().addErrback(lambda _: None)
