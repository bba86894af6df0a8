# -*- test-case-name: tests.unit.test_upstream -*-
"""
Talking HTTP to upstream providers: the shared connection pool, one POST
with a first-byte timeout, and the mapping of transport failures to errors
a client can act on.

One L{HTTPConnectionPool} serves every provider of the process, so
connections to a provider are reused across requests (the TLS handshake is
paid once, not per request); it is closed when the service stops. The pool
bounds idle connections kept per host, not concurrency.

Requests use Twisted's L{Agent} directly: on this hot path treq's
conveniences (URL objects, IDNA encoding) cost about as much CPU as the rest
of the proxy together (see DESIGN.md), and llmedge needs none of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from twisted.internet import error as net
from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseFailed,
    ResponseNeverReceived,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from llmedge import __version__
from llmedge.errors import APIError

USER_AGENT = f"llmedge/{__version__}".encode()

#: Upstream response headers relayed to the client: the provider's own rate
#: limits (unless llmedge set the same header itself) and its request id.
RELAYED_PREFIXES = (b"x-ratelimit-", b"openai-processing-ms", b"anthropic-ratelimit-")


class _QuietFactory(HTTPConnectionPool._factory):
    """
    The pool's connection factory, without a "Starting factory" log line
    for every upstream connection.
    """

    noisy = False


def make_pool(reactor, per_host: int, idle_timeout: float) -> HTTPConnectionPool:
    """
    The process's connection pool.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool._factory = _QuietFactory
    pool.maxPersistentPerHost = per_host
    pool.cachedConnectionTimeout = idle_timeout
    pool.retryAutomatically = False  # never resend a POST on our own
    return pool


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


def make_agent(
    reactor, pool: HTTPConnectionPool, connect_timeout: float, policy: BrowserLikePolicyForHTTPS
) -> IAgent:
    """
    An agent for one provider, sharing the process's pool and TLS policy.
    """
    endpoints = CachedEndpoints(reactor, policy, connect_timeout)
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool)


@implementer(IAgentEndpointFactory)
class CachedEndpoints:
    """
    One client endpoint per upstream (scheme, host, port), made once.

    Twisted's own factory makes a new endpoint for every request, even when
    the pool then reuses a connection, and a new L{HostnameEndpoint}
    IDNA-encodes its host each time: measured, a visible share of the
    proxy's CPU per request, for nothing. Endpoints are reusable, so one
    per upstream serves every request.
    """

    def __init__(self, reactor, policy, connect_timeout: float) -> None:
        self._reactor = reactor
        self._policy = policy
        self._timeout = connect_timeout
        self._endpoints: dict[tuple[bytes, bytes, int], object] = {}

    def endpointForURI(self, uri):
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            endpoint = HostnameEndpoint(
                self._reactor, uri.host, uri.port, timeout=self._timeout)
            if uri.scheme == b"https":
                creator = self._policy.creatorForNetloc(uri.host, uri.port)
                endpoint = wrapClientTLS(creator, endpoint)
            self._endpoints[key] = endpoint
        return endpoint


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
    agent: IAgent,
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
    request_headers = Headers({b"user-agent": [USER_AGENT], b"content-type": [b"application/json"]})
    for name, value in headers.items():
        request_headers.setRawHeaders(name, [value])
    d = agent.request(b"POST", url, request_headers, _BytesProducer(body))

    def timed_out(result, timeout):
        # The agent fails a cancelled request with ResponseNeverReceived,
        # not CancelledError: name the real cause here.
        raise first_byte_timeout(provider, first_byte)

    d.addTimeout(first_byte, clock, onTimeoutCancel=timed_out)

    def failed(reason: Failure):
        if reason.check(APIError, CancelledError):
            return reason
        raise unreachable(provider, reason)

    return d.addErrback(failed)


class Upstream:
    """
    What every HTTP provider shares: its name, agent, clock, the headers it
    sends with every request (its key among them) and its first-byte
    timeout.
    """

    def __init__(
        self,
        name: str,
        agent: IAgent,
        clock: IReactorTime,
        headers: dict[str, str] | None,
        first_byte_timeout: float,
    ) -> None:
        self.name = name
        self._agent = agent
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
        return post(self._agent, self.clock, self.name, url, headers, body, self.first_byte)


@inlineCallbacks
def read_json_object(response: IResponse, provider: str):
    """
    The body of a 200 response and the JSON object it holds.

    @raise APIError: 502 when the body is not a JSON object (an HTML page
        from a proxy in between, a truncated body).
    """
    payload = yield readBody(response)
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise upstream_error(provider, 502,
                             f"Provider '{provider}' sent a response that is not JSON.",
                             "upstream_malformed_response")
    return payload, document


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


@implementer(IBodyProducer)
class _BytesProducer:
    """
    A request body already in memory, sent in one write with its length
    (no chunked encoding, which some servers refuse).
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
