# -*- test-case-name: tests.unit.test_client -*-
"""
The pool of idle upstream connections, and the client that sends each
request over one of them (or a new one).

Each URL is parsed once (L{_Target}): the request line, C{Host} and the TCP
or TLS endpoint are kept for the next request to it, and the request head
and body go out in one C{transport.write}. A request is never sent twice: a
POST is not idempotent, so a pooled connection found closed (the server
timed it out) fails its request, as Twisted's agent does with
C{retryAutomatically} off.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IResponse
from zope.interface import implementer

from llmedge.providers.client.connection import Connection
from llmedge.providers.client.interfaces import IIdlePool
from llmedge.providers.client.wire import header_block

_BODY_METHODS = frozenset([b"POST", b"PUT", b"PATCH"])


@implementer(IIdlePool)
class ConnectionPool:
    """
    Idle connections kept for reuse, per C{(scheme, host, port)}, shared by
    every L{HTTP11Client} of the process.

    At most C{per_host} idle connections are kept per host (a bound on idle
    sockets, not on concurrency), the most recently used first, so a burst's
    extra connections are the ones left to expire. One timer, not one per
    connection, closes those idle for C{idle_timeout} seconds: a request
    that reuses a connection touches no timer.
    """

    def __init__(self, reactor, per_host: int = 128, idle_timeout: float = 240.0) -> None:
        self._reactor = reactor
        self.per_host = per_host
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple, list[Connection]] = {}
        self._timer = None

    def take(self, key: tuple) -> Connection | None:
        idle = self._idle.get(key)
        return idle.pop() if idle else None

    def release(self, connection: Connection) -> bool:
        idle = self._idle.get(connection.key)
        if idle is None:
            idle = self._idle[connection.key] = []
        if len(idle) >= self.per_host:
            return False
        connection.idle_since = self._reactor.seconds()
        idle.append(connection)
        if self._timer is None:
            self._timer = self._reactor.callLater(self.idle_timeout, self._expire)
        return True

    def forget(self, connection: Connection) -> None:
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    def _expire(self) -> None:
        self._timer = None
        now = self._reactor.seconds()
        # A millisecond's tolerance: the timer is due when the oldest
        # connection's time is up, give or take float rounding.
        deadline = now - self.idle_timeout + 0.001
        oldest = None
        for key, idle in list(self._idle.items()):
            while idle and idle[0].idle_since <= deadline:
                idle.pop(0).close()
            if not idle:
                del self._idle[key]
            elif oldest is None or idle[0].idle_since < oldest:
                oldest = idle[0].idle_since
        if oldest is not None:
            self._timer = self._reactor.callLater(
                max(0.0, oldest + self.idle_timeout - now), self._expire)

    def closeCachedConnections(self) -> Deferred[None]:
        """
        Close every idle connection (busy ones end with their requests).

        @return: fires once they are all closed.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        idle, self._idle = self._idle, {}
        closed = []
        for connections in idle.values():
            for connection in connections:
                closed.append(connection.whenClosed())
                connection.close()
        return gatherResults(closed).addCallback(lambda _: None)


class _Target:
    """
    What a URL means to the client, worked out once: the pool key, the
    request line's tail with the C{Host} header, and the endpoint.
    """

    __slots__ = ("key", "line", "endpoint")

    def __init__(self, key: tuple, line: bytes, endpoint) -> None:
        self.key = key
        self.line = line
        self.endpoint = endpoint


class HTTP11Client:
    """
    Requests over the connections of a shared L{ConnectionPool}: one
    client per provider, with its own connect timeout.

    @param policy: makes the TLS settings for C{https} hosts
        (C{creatorForNetloc}).
    """

    #: Parsed URLs kept per client; providers use a handful.
    max_targets = 256

    def __init__(self, reactor, pool: ConnectionPool, connect_timeout: float = 10.0,
                 policy: BrowserLikePolicyForHTTPS | None = None) -> None:
        self._reactor = reactor
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._policy = policy if policy is not None else BrowserLikePolicyForHTTPS()
        self._targets: dict[bytes, _Target] = {}
        self._endpoints: dict[tuple, object] = {}

    def request(self, method: bytes, url: bytes, headers: Mapping[bytes, bytes],
                body: bytes = b"", fixed: bytes = b"") -> Deferred[IResponse]:
        """
        Send one request and fire with its response once the head arrived.

        C{headers} maps each name to its one value, all L{bytes};
        C{Host} and C{Content-Length} are the client's to write. Cancelling
        the Deferred before the head arrived closes the connection and fails
        it with L{CancelledError}. Fails with L{ResponseNeverReceived} or
        L{ResponseFailed} when the connection ends first or the response is
        not HTTP; connection failures come as the endpoint reports them.

        @param fixed: header lines the caller rendered once with
            L{header_block} for every request it sends (a provider's key
            and own headers), written before C{headers}, which must not
            name them again.
        """
        target = self._targets.get(url)
        if target is None:
            try:
                target = self._target(url)
            except Exception:
                return fail()
        try:
            block = fixed + header_block(headers) if headers else fixed
        except Exception:
            return fail()
        if body or method in _BODY_METHODS:
            block += b"Content-Length: %d\r\n" % len(body)
        data = b"".join((method, target.line, block, b"\r\n", body))
        connection = self._pool.take(target.key)
        if connection is not None:
            return connection.send(method, data)
        connection = Connection(self._pool, target.key)
        return connection.connect(target.endpoint, method, data)

    def _target(self, url: bytes) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {scheme!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        default = 443 if scheme == b"https" else 80
        port = parts.port or default
        path = parts.path or b"/"
        if parts.query:
            path += b"?" + parts.query
        name = b"[" + host + b"]" if b":" in host else host
        if port != default:
            name += b":%d" % port
        if len(self._targets) >= self.max_targets:
            self._targets.clear()
        key = (scheme, host, port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = HostnameEndpoint(self._reactor, host, port, timeout=self._connect_timeout)
            if scheme == b"https":
                endpoint = wrapClientTLS(self._policy.creatorForNetloc(host, port), endpoint)
            self._endpoints[key] = endpoint
        target = _Target(key, b" " + path + b" HTTP/1.1\r\nHost: " + name + b"\r\n", endpoint)
        self._targets[url] = target
        return target
