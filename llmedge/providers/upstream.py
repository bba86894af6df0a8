# -*- test-case-name: tests.unit.test_upstream -*-
"""
Talking HTTP to upstream providers: the shared connection pool, one POST
with a first-byte timeout, answers read within their bounds (L{Bounds}),
and the headers worth passing on; failures become errors a client can act
on (L{llmedge.providers.upstream_errors}).

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

import json
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IResponse

from llmedge import __version__
from llmedge.providers.client import ConnectionPool, HTTP11Client, discard, read_body
from llmedge.providers.headers import MAX_VALUE, relayed_headers, retry_after_header
from llmedge.providers.upstream_errors import (
    first_byte_timeout,
    from_failure,
    malformed,
    upstream_error,
)

__all__ = [
    "Bounds", "Upstream", "is_json", "make_client", "make_pool", "media_type", "post",
    "tls_policy", "upstream_error",
]

USER_AGENT = f"llmedge/{__version__}".encode()

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


def post(
    client: HTTP11Client,
    clock: IReactorTime,
    provider: str,
    url: bytes,
    headers: dict[bytes, bytes],
    body: bytes,
    first_byte: float,
) -> Deferred[IResponse]:
    """
    POST C{body} and fire with the response once its headers arrived.

    Fails with a 502 L{APIError} when no response comes or what comes is
    not HTTP (L{from_failure} tells which), or a 504 when its headers take
    longer than C{first_byte} seconds. Cancelling the Deferred closes the
    connection.
    """
    request_headers = {b"user-agent": USER_AGENT, b"content-type": b"application/json"}
    request_headers.update(headers)
    d = client.request(b"POST", url, request_headers, body)

    def timed_out(result, timeout):
        # The timeout cancelled the request (CancelledError): name the
        # real cause here.
        raise first_byte_timeout(provider, first_byte)

    d.addTimeout(first_byte, clock, onTimeoutCancel=timed_out)

    def failed(reason: Failure):
        if reason.check(CancelledError):
            return reason
        raise from_failure(provider, reason)

    return d.addErrback(failed)


def media_type(response: IResponse) -> bytes | None:
    """
    The response's media type, lower-case and without parameters
    (C{b"text/event-stream"}), or L{None} when it names none.
    """
    value = response.headers.getRawHeaders(b"content-type", [None])[0]
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
        self.headers = {k.lower().encode(): v.encode() for k, v in (headers or {}).items()}

    def post(self, url: bytes, call_headers: dict[str, str], body: bytes) -> Deferred[IResponse]:
        """
        POST C{body} to C{url} with the provider's headers and the call's
        own (request id, trace context).
        """
        headers = dict(self.headers)
        for name, value in call_headers.items():
            headers[name.encode("latin-1")] = value.encode("latin-1")
        return post(self._client, self.clock, self.name, url, headers, body, self.first_byte)

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

    def _parse(self, payload: bytes) -> tuple[bytes, dict]:
        try:
            document = json.loads(payload)
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
