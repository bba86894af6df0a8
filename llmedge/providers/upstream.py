# -*- test-case-name: tests.unit.test_upstream -*-
"""
Talking HTTP to upstream providers: the shared connection pool, one POST
with a first-byte timeout (L{llmedge.providers.upstream_request}), answers
read within their bounds (L{Bounds}), and the headers worth passing on;
failures become errors a client can act on
(L{llmedge.providers.upstream_errors}).

One L{ConnectionPool} serves every provider of the process, so connections
to a provider are reused across requests (the TLS handshake is paid once,
not per request); it is closed when the service stops. The pool bounds idle
connections kept per host, not concurrency.

Requests go through llmedge's own HTTP/1.1 client (L{llmedge.providers.client}),
not Twisted's L{twisted.web.client.Agent}: on this hot path the agent's
generality cost more CPU than the rest of the proxy (bench/README.md), and
llmedge needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IResponse

from llmedge.jsonwire import loads
from llmedge.providers.client import ConnectionPool, HTTP11Client, body_here, discard, read_body
from llmedge.providers.headers import MAX_VALUE, relayed_headers, retry_after_header
from llmedge.providers.upstream_errors import from_failure, malformed, upstream_error
from llmedge.providers.upstream_request import USER_AGENT, FirstByte, ProviderHeaders

__all__ = [
    "USER_AGENT", "Bounds", "Upstream", "is_json", "make_client", "make_pool", "media_type",
    "tls_policy", "upstream_error",
]


@dataclass(frozen=True)
class Bounds:
    """
    The most llmedge reads of what one upstream sends, in bytes: a whole
    answer (large embedding batches run to tens of MB), an error body, one
    server-sent event, one relayed header value. The head of a response is
    bounded apart, by L{llmedge.providers.client.MAX_HEAD}.
    """

    response: int = 64 * 1024 * 1024
    error: int = 64 * 1024
    event: int = 1024 * 1024
    header_value: int = MAX_VALUE


def make_pool(reactor, per_host: int, idle_timeout: float) -> ConnectionPool:
    """
    The process's connection pool; C{closeCachedConnections()} closes its
    idle connections.
    """
    return ConnectionPool(reactor, per_host, idle_timeout)


def tls_policy(ca_bundle: str | None = None) -> BrowserLikePolicyForHTTPS:
    """
    How upstream certificates are verified (service-identity): against the
    system's roots, or the CAs of the given PEM bundle, read once here for
    every provider.

    @raise OSError: the bundle cannot be read.
    @raise ValueError: it holds no certificate.
    """
    if not ca_bundle:
        return BrowserLikePolicyForHTTPS()
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    with open(ca_bundle, "rb") as f:
        pem = f.read()
    certificates = [
        Certificate.loadPEM(b"-----BEGIN CERTIFICATE-----" + part)
        for part in pem.split(b"-----BEGIN CERTIFICATE-----")[1:]
    ]
    if not certificates:
        raise ValueError("no PEM certificate in it")
    return BrowserLikePolicyForHTTPS(trustRootFromCertificates(certificates))


def make_client(
    reactor, pool: ConnectionPool, connect_timeout: float, policy: BrowserLikePolicyForHTTPS
) -> HTTP11Client:
    """
    The HTTP client of one provider, sharing the process's pool and TLS
    policy, with the provider's connect timeout.
    """
    return HTTP11Client(reactor, pool, connect_timeout, policy)


def media_type(response: IResponse) -> bytes | None:
    """
    The response's media type, lower-case and without parameters
    (C{b"text/event-stream"}), or L{None} when it names none.
    """
    value = response.headers.get(b"content-type")
    if value is None:
        return None
    return value.split(b";", 1)[0].strip().lower() or None


def is_json(kind: bytes | None) -> bool:
    """
    Whether a media type is JSON (C{application/json}, C{…+json}).
    """
    return kind is not None and (kind == b"application/json" or kind.endswith(b"+json"))


class Upstream:
    """
    What every HTTP provider shares: its name, HTTP client, clock, the
    headers it sends with every request (its key among them), its
    first-byte timeout and the bounds on what it may send back.

    The provider's headers are the same for every request: their lines are
    rendered once, not per request (L{ProviderHeaders}).
    """

    def __init__(
        self,
        name: str,
        client: HTTP11Client,
        clock: IReactorTime,
        headers: dict[str, str] | None,
        first_byte_timeout: float,
        bounds: Bounds = Bounds(),
    ) -> None:
        self.name = name
        self._client = client
        self.clock = clock
        self.first_byte = first_byte_timeout
        self.bounds = bounds
        self._headers = ProviderHeaders(headers)

    @property
    def headers(self) -> MappingProxyType:
        """
        The headers sent with every request (L{USER_AGENT} and the JSON
        content type unless configured otherwise), by lower-case name,
        read-only: L{set_header} changes them.
        """
        return self._headers.view

    def set_header(self, name: bytes, value: bytes) -> None:
        """
        Send C{value} as C{name} (lower-case) with every request from now on.
        """
        self._headers.set(name, value)

    def post(self, url: bytes, call_headers: dict[str, str], body: bytes) -> Deferred[IResponse]:
        """
        POST C{body} to C{url} with the provider's headers and the call's
        own (request id, trace context; these win over the provider's of
        the same name), and fire with the response once its head arrived.

        Fails with a 502 L{APIError} when no response comes or what comes is
        not HTTP (L{from_failure} tells which), or a 504 when its head takes
        longer than C{first_byte_timeout} seconds. Cancelling the Deferred
        closes the connection.
        """
        try:
            lines, headers = self._headers.lines(call_headers)
        except ValueError:  # a configured name the client writes itself
            return fail(from_failure(self.name, Failure()))
        d = self._client.request(b"POST", url, headers, body, lines)
        deadline = FirstByte(self.name, self.clock, self.first_byte, d)
        return d.addCallbacks(deadline.arrived, deadline.failed)

    def exchange(self, url: bytes, call_headers: dict[str, str], body: bytes,
                 refused: Callable[[bytes | None, IResponse], Any],
                 answered: Callable[..., Any], *args: Any) -> Deferred:
        """
        L{post}, then the answer: a 200 response goes to C{answered(response,
        *args)}, another status's error body (L{read_error}) to
        C{refused(body, response)}, which raises the client's error.

        Plain callbacks, not L{inlineCallbacks}, on the path of every
        request; the Deferred returned still fires once, with what
        C{answered} gives (its Deferred's result when it gives one), and is
        not called before: cancelling it at any time, as a client that
        goes away does, cancels what is under way (the request, or the
        reading of its answer).
        """
        head = self.post(url, call_headers, body).addCallback(
            self._answered, refused, answered, args)
        done: Deferred = Deferred(lambda _: head.cancel())
        head.chainDeferred(done)
        return done

    def _answered(self, response: IResponse, refused, answered, args: tuple):
        if response.code == 200:
            return answered(response, *args)
        return self.read_error(response).addCallback(refused, response)

    def read_json(self, response: IResponse) -> Deferred[tuple[bytes, dict]]:
        """
        The body of a 200 response and the JSON object it holds, read up to
        C{bounds.response} bytes; fired at once when the body came with the
        response's head.

        @raise APIError: 502 when the body is not a JSON object (an HTML
            page from a proxy in between), could not be read whole, or is
            over the bound.
        """
        return read_body(response, self.bounds.response).addCallbacks(self._parse, self._failed)

    def with_json(self, response: IResponse, then: Callable[..., Any], *args: Any) -> Any:
        """
        C{then(read, *args)}, C{read} what L{read_json} gives: called at once
        and its result returned when the body is all here already (most
        answers arrive with their head), which costs no Deferred; a
        Deferred of its result otherwise. For callbacks, which may return
        either.

        @raise APIError: as L{read_json} fails.
        """
        payload = body_here(response, self.bounds.response)
        if payload is None:
            return self.read_json(response).addCallback(then, *args)
        return then(self._parse(payload), *args)

    def _parse(self, payload: bytes) -> tuple[bytes, dict]:
        try:
            document = loads(payload, constants=True)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise malformed(self.name, "a body that is not a JSON object")
        return payload, document

    def read_error(self, response: IResponse) -> Deferred[bytes | None]:
        """
        The body of an error response, read up to C{bounds.error} bytes;
        L{None} when it is larger or could not be read (the status alone
        then speaks: an error is an error however its body ended).
        """
        return read_body(response, self.bounds.error).addErrback(_unread)

    def _failed(self, reason: Failure):
        if reason.check(CancelledError):
            return reason
        raise from_failure(self.name, reason)

    def streams(self, response: IResponse) -> bool:
        """
        Whether the 200 answer to a stream request is the event stream asked
        for (or names no type), or, L{False}, one JSON document: a server
        that ignored C{"stream"}, whose answer is then streamed to the
        client. Any other body (an HTML page) is discarded and raised as a
        malformed answer, before the client has been sent anything.
        """
        kind = media_type(response)
        if kind is None or kind == b"text/event-stream":
            return True
        if is_json(kind):
            return False
        discard(response)
        raise malformed(self.name, "a stream request answered with a body that is neither "
                                   "text/event-stream nor JSON")

    def relayed(self, response: IResponse) -> tuple[tuple[bytes, bytes], ...]:
        """
        The response's headers to pass on to the client, checked.
        """
        return relayed_headers(response.headers, self.bounds.header_value)

    def retry_after(self, response: IResponse) -> list[tuple[bytes, bytes]]:
        """
        The C{Retry-After} to give the client for this (429 or 503) answer.
        """
        return retry_after_header(response.headers, self.clock.seconds())


def _unread(reason: Failure) -> Failure | None:
    if reason.check(CancelledError):
        return reason
    return None
