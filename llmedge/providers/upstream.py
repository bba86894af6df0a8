# -*- test-case-name: tests.unit.test_upstream -*-
"""
Talking HTTP to upstream providers: the shared connection pool, one POST
with a first-byte timeout, and the mapping of transport failures to errors
a client can act on.

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
from collections.abc import Iterable

from twisted.internet import error as net
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseFailed, ResponseNeverReceived
from twisted.web.iweb import IResponse

from llmedge import __version__
from llmedge.errors import APIError
from llmedge.providers.client import ConnectionPool, HTTP11Client
from llmedge.providers.response import read_body

USER_AGENT = f"llmedge/{__version__}".encode()

#: Upstream response headers relayed to the client: the provider's own rate
#: limits (unless llmedge set the same header itself) and its request id.
RELAYED_PREFIXES = (b"x-ratelimit-", b"openai-processing-ms", b"anthropic-ratelimit-")


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


def upstream_error(
    provider: str,
    status: int,
    message: str,
    code: str,
    type: str = "upstream_error",
    headers: Iterable[tuple[bytes, bytes]] = (),
    retryable: bool = True,
) -> APIError:
    """
    An error caused upstream; C{retryable} ones let the next target try.
    """
    error = APIError(status, message, type=type, code=code, headers=headers)
    error.retryable = retryable
    error.provider = provider
    return error


def unreachable(provider: str, reason: Failure) -> APIError:
    """
    The error for a request that never got a response, with a short cause
    and never Twisted's failure text.
    """
    cause = "the connection failed"
    inner = reason.value
    if isinstance(inner, ResponseNeverReceived | ResponseFailed) and inner.reasons:
        inner = inner.reasons[0].value
    if isinstance(inner, net.ConnectionRefusedError):
        cause = "connection refused"
    elif isinstance(inner, net.DNSLookupError):
        cause = "its host name does not resolve"
    elif isinstance(inner, net.TimeoutError | net.TCPTimedOutError):
        cause = "the connection timed out"
    elif type(inner).__module__.startswith("OpenSSL") or "SSL" in type(inner).__name__:
        cause = "the TLS handshake failed"
    elif isinstance(inner, net.ConnectionLost | net.ConnectionDone):
        cause = "the connection was closed before a response"
    return upstream_error(
        provider, 502, f"Provider '{provider}' is unreachable: {cause}.", "upstream_unreachable"
    )


def first_byte_timeout(provider: str, seconds: float) -> APIError:
    return upstream_error(
        provider, 504,
        f"Provider '{provider}' sent no response within {seconds:g} seconds.",
        "upstream_timeout",
    )


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

    Fails with a 502 L{APIError} when no response comes, or a 504 when its
    headers take longer than C{first_byte} seconds. Cancelling the
    Deferred closes the connection.
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
        if reason.check(APIError, CancelledError):
            return reason
        raise unreachable(provider, reason)

    return d.addErrback(failed)


class Upstream:
    """
    What every HTTP provider shares: its name, HTTP client, clock, the
    headers it sends with every request (its key among them) and its
    first-byte timeout.
    """

    def __init__(
        self,
        name: str,
        client: HTTP11Client,
        clock: IReactorTime,
        headers: dict[str, str] | None,
        first_byte_timeout: float,
    ) -> None:
        self.name = name
        self._client = client
        self.clock = clock
        self.first_byte = first_byte_timeout
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


def read_json_object(response: IResponse, provider: str) -> Deferred[tuple[bytes, dict]]:
    """
    The body of a 200 response and the JSON object it holds; fired at once
    when the body came with the response's head.

    @raise APIError: 502 when the body is not a JSON object (an HTML page
        from a proxy in between) or could not be read whole.
    """

    def parse(payload: bytes) -> tuple[bytes, dict]:
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise not_json()
        return payload, document

    def failed(reason: Failure):
        if reason.check(CancelledError):
            return reason
        raise not_json()

    def not_json() -> APIError:
        return upstream_error(provider, 502,
                              f"Provider '{provider}' sent a response that is not JSON.",
                              "upstream_malformed_response")

    return read_body(response).addCallbacks(parse, failed)


def relayed_headers(response: IResponse) -> tuple[tuple[bytes, bytes], ...]:
    """
    The upstream headers worth passing on to the client.
    """
    found = []
    for name, values in response.headers.getAllRawHeaders():
        lower = name.lower()
        if lower.startswith(RELAYED_PREFIXES):
            found.extend((lower, v) for v in values)
    return tuple(found)
