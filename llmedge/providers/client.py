# -*- test-case-name: tests.unit.test_client -*-
"""
A lean pooled HTTP/1.1 client for upstream POSTs.

Twisted's L{twisted.web.client.Agent} is general: it streams request bodies
from producers, pipelines nothing but prepares for everything, parses each
response with a line receiver feeding a state machine feeding a transfer
decoder, and threads all of it through chains of Deferreds. Measured, that
machinery was most of llmedge's CPU per proxied request. llmedge asks much
less of a client: POST a body already in memory to one of a few fixed
URLs, over a kept-alive connection, and hand back the response head as soon
as it arrives, with the body streamed under back-pressure or read whole.

So this client does only that, in as few Python calls as it can:

  - each URL is parsed once (L{_Target}); the request line, C{Host} and
    the TCP or TLS endpoint are kept for the next request to it;
  - the request head and body go out in one C{transport.write}, one send;
  - the response head is found with two C{bytes.find} calls and split in
    one pass; C{Content-Length}, chunked and close-delimited bodies are
    decoded by slicing the bytes as they arrive;
  - a body that arrived with its head (the common case for a completion)
    is complete before the response is handed over, so L{read_body} fires
    at once and the connection is already back in the pool.

A request is never sent twice: a POST is not idempotent, so a pooled
connection found closed (the server timed it out) fails its request, as
the agent llmedge used before did with C{retryAutomatically} off.

The response is an L{IResponse}, so the providers' code (and
L{twisted.web.client.readBody}) work with it unchanged; its body ends with
the reasons the agent's did: L{ResponseDone}, L{PotentialDataLoss} for a
body ended by the connection's close, L{ResponseFailed} otherwise.

The wire format (L{llmedge.providers.http1}) and the response object
(L{llmedge.providers.response}) live in modules of their own; the pool and
the connection share state on the hot path (a response completed by the
packet that brought its head puts its connection back before anyone sees
it), so they stay together here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    BrowserLikePolicyForHTTPS,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from llmedge.providers.http1 import MAX_HEAD, MalformedResponse, blank_line, header_block, parse_head
from llmedge.providers.response import Response

#: Body bytes kept for a response whose body nobody reads yet; past this,
#: the connection stops reading until someone does.
MAX_BUFFER = 64 * 1024
#: A chunk-size line longer than this is not HTTP.
MAX_CHUNK_LINE = 4096

_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?\Z")
_BODY_METHODS = frozenset([b"POST", b"PUT", b"PATCH"])

# Connection states.
_WAITING, _BODY, _IDLE, _DEAD = range(4)
# Chunked body states: a size line, chunk data, the CRLF after it, trailers.
_SIZE, _DATA, _CRLF, _TRAILER, _END = range(5)


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
        self._idle: dict[tuple, list[_Connection]] = {}
        self._timer = None

    def _get(self, key: tuple) -> _Connection | None:
        idle = self._idle.get(key)
        return idle.pop() if idle else None

    def _release(self, connection: _Connection) -> bool:
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

    def _forget(self, connection: _Connection) -> None:
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
                idle.pop(0)._close()
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
                closed.append(connection._whenClosed())
                connection._close()
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
                body: bytes = b"") -> Deferred[IResponse]:
        """
        Send one request and fire with its response once the head arrived.

        C{headers} maps each name to its one value, all L{bytes};
        C{Host} and C{Content-Length} are the client's to write. Cancelling
        the Deferred before the head arrived closes the connection and fails
        it with L{CancelledError}. Fails with L{ResponseNeverReceived} or
        L{ResponseFailed} when the connection ends first or the response is
        not HTTP; connection failures come as the endpoint reports them.
        """
        target = self._targets.get(url)
        if target is None:
            try:
                target = self._target(url)
            except Exception:
                return fail()
        try:
            block = header_block(headers)
        except Exception:
            return fail()
        if body or method in _BODY_METHODS:
            block += b"Content-Length: %d\r\n" % len(body)
        data = b"".join((method, target.line, block, b"\r\n", body))
        connection = self._pool._get(target.key)
        if connection is not None:
            return connection._send(method, data)
        connection = _Connection(self._pool, target.key)
        return connection._connect(target.endpoint, method, data)

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


#: Header names as written on the wire, checked once: C{x-api-key} ->
#: C{X-Api-Key}.
class _ConnectionFactory(Factory):
    """
    Hands one L{_Connection}, made before connecting, to the endpoint.
    """

    noisy = False

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def buildProtocol(self, addr):
        connection, self._connection = self._connection, None
        if connection is None or connection._state == _DEAD:
            return None  # the request was cancelled meanwhile
        return connection


class _Connection(Protocol):
    """
    One upstream connection: writes a request, parses its response, and
    goes back to the pool when the response is over and the connection can
    carry another.

    A connection is L{_WAITING} for a response head, reading a L{_BODY},
    L{_IDLE} in the pool, or L{_DEAD}: closing, closed, or never to be
    reused.
    """

    def __init__(self, pool: ConnectionPool, key: tuple) -> None:
        self._pool = pool
        self.key = key
        self._state = _WAITING
        self._result: Deferred | None = None
        self._pending: bytes | None = None  # the request, until connected
        self._connecting: Deferred | None = None
        self._method = b""
        self._head = b""  # the response head so far
        self._seen = False  # whether any byte of a response arrived
        self._response: Response | None = None
        self._persistent = False
        self._decode = None  # the body decoder
        self._remaining = 0  # bytes left of the body or of the chunk
        self._chunk = _SIZE
        self._partial = b""  # bytes of an incomplete chunk line
        self._trailer = 0
        self._paused = False  # by the body's consumer
        self._held = False  # until the body has a consumer
        self._aborted = False
        self._closed: list[Deferred] = []
        self.idle_since = 0.0

    # Sending

    def _connect(self, endpoint, method: bytes, data: bytes) -> Deferred[IResponse]:
        self._method = method
        self._pending = data
        result = self._result = Deferred(self._cancel)
        self._connecting = endpoint.connect(_ConnectionFactory(self))
        self._connecting.addCallbacks(self._connected, self._connectFailed)
        return result

    def _connected(self, _) -> None:
        self._connecting = None

    def _connectFailed(self, reason: Failure) -> None:
        self._connecting = None
        result, self._result = self._result, None
        self._state = _DEAD
        if result is not None:
            result.errback(reason)

    def connectionMade(self) -> None:
        nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if nodelay is not None:
            nodelay(True)  # the request is one write: send it now
        data, self._pending = self._pending, None
        if self._state == _WAITING and data:
            self.transport.write(data)

    def _send(self, method: bytes, data: bytes) -> Deferred[IResponse]:
        self._state = _WAITING
        self._method = method
        self._seen = False
        result = self._result = Deferred(self._cancel)
        self.transport.write(data)
        return result

    def _cancel(self, result: Deferred) -> None:
        # Deferred.cancel fails the request with CancelledError itself.
        if self._result is not result:
            return
        self._result = None
        self._state = _DEAD
        if self.transport is not None:
            self.transport.abortConnection()
        elif self._connecting is not None:
            self._connecting.cancel()

    # Receiving

    def dataReceived(self, data: bytes) -> None:
        state = self._state
        if state == _BODY:
            if not self._aborted:
                self._decode(data)
        elif state == _WAITING:
            self._headReceived(data)
        elif state == _IDLE:
            # Bytes no request asked for: nothing more on this connection
            # can be trusted to belong to the right request.
            self._pool._forget(self)
            self._state = _DEAD
            self.transport.abortConnection()

    def _headReceived(self, data: bytes) -> None:
        self._seen = True
        buffer = self._head + data if self._head else data
        while True:
            end, start = blank_line(buffer)
            if end < 0 or end > MAX_HEAD:
                if end > MAX_HEAD or len(buffer) > MAX_HEAD:
                    self._failHead(MalformedResponse(f"response head over {MAX_HEAD} bytes"))
                else:
                    self._head = buffer
                return
            try:
                response, length, chunked, persistent = parse_head(buffer[:end], self._method)
            except MalformedResponse as e:
                self._failHead(e)
                return
            buffer = buffer[start:]
            if response is not None:
                break
            if not buffer:  # a 1xx: the response is still to come
                self._head = b""
                return
        self._head = b""
        result, self._result = self._result, None
        self._response = response
        response._connection = self
        self._persistent = persistent
        self._state = _BODY
        self._aborted = False
        if length == 0:
            self._complete(not buffer)
        elif chunked:
            self._decode = self._chunked
            self._chunk, self._partial = _SIZE, b""
            if buffer:
                self._chunked(buffer)
        elif length is None:
            self._decode = self._received
            if buffer:
                self._received(buffer)
        else:
            self._decode = self._identity
            self._remaining = length
            if buffer:
                self._identity(buffer)
        # Last: application code runs from here, and may already find the
        # body complete and this connection back in the pool.
        result.callback(response)

    def _failHead(self, error: Exception) -> None:
        result, self._result = self._result, None
        self._state = _DEAD
        self.transport.abortConnection()
        result.errback(Failure(ResponseFailed([Failure(error)])))

    def _identity(self, data: bytes) -> None:
        remaining = self._remaining - len(data)
        if remaining > 0:
            self._remaining = remaining
            self._received(data)
            return
        extra = remaining < 0
        if extra:
            data = data[:self._remaining]
        self._remaining = 0
        self._received(data)
        if not self._aborted:
            self._complete(not extra)

    def _chunked(self, data: bytes) -> None:
        if self._partial:
            data, self._partial = self._partial + data, b""
        pieces = []
        position, end = 0, len(data)
        state = self._chunk
        error = None
        while position < end:
            if state == _DATA:
                stop = position + self._remaining
                if stop > end:
                    pieces.append(data[position:] if position else data)
                    self._remaining = stop - end
                    break
                pieces.append(data[position:stop])
                position, state = stop, _CRLF
            elif state == _CRLF:
                if data.startswith(b"\r\n", position):
                    position, state = position + 2, _SIZE
                elif data[position] == 10:
                    position, state = position + 1, _SIZE
                elif position + 1 == end and data[position] == 13:
                    self._partial = b"\r"
                    break
                else:
                    error = MalformedResponse("no CRLF after a chunk")
                    break
            else:
                eol = data.find(b"\n", position)
                if eol < 0:
                    self._partial = data[position:]
                    limit = MAX_CHUNK_LINE if state == _SIZE else MAX_HEAD - self._trailer
                    if len(self._partial) > limit:
                        error = MalformedResponse("chunk line or trailers too long")
                    break
                line = data[position:eol].rstrip(b"\r")
                size, position = eol + 1 - position, eol + 1
                if state == _SIZE:
                    match = _CHUNK_SIZE.match(line)
                    if match is None:
                        error = MalformedResponse(f"bad chunk size line {line[:80]!r}")
                        break
                    self._remaining = int(match.group(1), 16)
                    state = _DATA if self._remaining else _TRAILER
                    self._trailer = 0
                elif line:
                    self._trailer += size
                    if self._trailer > MAX_HEAD:
                        error = MalformedResponse("trailers too long")
                        break
                else:
                    state = _END
                    break
        self._chunk = state
        if pieces:
            self._received(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if self._aborted or self._state != _BODY:
            return
        if error is not None:
            self._failBody(error)
        elif state == _END:
            self._complete(position == end)

    def _received(self, data: bytes) -> None:
        response = self._response
        if response._data is None:
            response._protocol.dataReceived(data)
            return
        response._data.append(data)
        response._size += len(data)
        if response._size > MAX_BUFFER and not self._held:
            self._held = True
            self.transport.pauseProducing()

    def _complete(self, reusable: bool) -> None:
        """
        The body is all here: back to the pool if it may carry another
        request, closed otherwise; then the body's consumer learns it.
        """
        response, self._response = self._response, None
        response._connection = None
        self._decode = None
        if self._paused or self._held:
            self._paused = self._held = False
            self.transport.resumeProducing()  # an idle connection must see a close
        self._state = _IDLE
        if not (reusable and self._persistent and self._pool._release(self)):
            self._state = _DEAD
            self.transport.loseConnection()
        response._finish(None)

    def _failBody(self, error: Exception) -> None:
        response, self._response = self._response, None
        response._connection = None
        self._state = _DEAD
        self.transport.abortConnection()
        response._finish(Failure(ResponseFailed([Failure(error)], response)))

    # The body's consumer

    def _attach(self) -> None:
        if self._held:
            self._held = False
            if not self._paused:
                self.transport.resumeProducing()

    def _pause(self) -> None:
        if not self._aborted:
            self._paused = True
            self.transport.pauseProducing()

    def _resume(self) -> None:
        if not self._aborted:
            self._paused = False
            if not self._held:
                self.transport.resumeProducing()

    def _abort(self) -> None:
        if not self._aborted:
            self._aborted = True
            self.transport.abortConnection()

    # Ending

    def _close(self) -> None:
        self._state = _DEAD
        self.transport.loseConnection()

    def _whenClosed(self) -> Deferred[None]:
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        return closed

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        state, self._state = self._state, _DEAD
        if state == _IDLE:
            self._pool._forget(self)
        elif state == _WAITING:
            result, self._result = self._result, None
            if result is not None:
                kind = ResponseFailed if self._seen else ResponseNeverReceived
                result.errback(Failure(kind([reason])))
        elif state == _BODY:
            response, self._response = self._response, None
            response._connection = None
            if self._decode == self._received and not self._aborted:
                end = Failure(PotentialDataLoss())
            else:
                end = Failure(ResponseFailed([reason], response))
            response._finish(end)
        closed, self._closed = self._closed, []
        for d in closed:
            d.callback(None)

