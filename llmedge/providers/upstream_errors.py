# -*- test-case-name: tests.unit.test_upstream -*-
"""
What went wrong upstream, told apart, for the client and for whoever
debugs the provider.

Three failures look alike from far away and are not:

  - B{unreachable} (502 C{upstream_unreachable}): no response came at all —
    connection refused, a name that does not resolve, a TLS handshake that
    failed, a connection closed before the first byte of an answer;
  - B{malformed} (502 C{upstream_malformed_response}): an answer came and
    is not one: a garbage status line, conflicting C{Content-Length}s, bad
    chunked framing, a connection closed in the middle of the answer, a
    body that is not the JSON it should be;
  - B{too large} (502 C{upstream_response_too_large}): an answer over one
    of llmedge's bounds (L{llmedge.providers.upstream.Bounds}).

Each is its own error code, its own outcome in the access log and in
C{llmedge_upstream_request_duration_seconds} (the error's C{outcome}), and its message
names the cause without quoting the upstream's bytes or Twisted's failure
text. All are retryable: another target may do better, and nothing has
reached the client yet when they are raised.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet import error as net
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from llmedge.errors import APIError
from llmedge.providers.client import BodyTooLarge, HeadTooLarge, MalformedResponse

UNREACHABLE = "upstream_unreachable"
MALFORMED = "upstream_malformed_response"
TOO_LARGE = "upstream_response_too_large"

#: What an upstream failure says about where the fault lies, for routing
#: (L{llmedge.routing}): the provider's C{HOST} (it refuses connections, does
#: not resolve, fails TLS, refuses llmedge's key: every model on it alike),
#: the C{DEPLOYMENT} (this model on this provider: a 5xx, no first byte in
#: time, a malformed answer), a C{RATE_LIMIT} the deployment asked to be
#: respected (a 429, for its C{retry_after} seconds), or the C{REQUEST}
#: itself (a 429 about this request's size, which any deployment of the
#: same account would give, and which says nothing of the deployment).
HOST, DEPLOYMENT, RATE_LIMIT, REQUEST = "host", "deployment", "rate_limit", "request"

#: The outcome recorded for each error code; any other error is C{error}.
_OUTCOMES = {UNREACHABLE: "unreachable", MALFORMED: "malformed", TOO_LARGE: "too_large"}


def upstream_error(
    provider: str,
    status: int,
    message: str,
    code: str,
    type: str = "upstream_error",
    headers: Iterable[tuple[bytes, bytes]] = (),
    retryable: bool = True,
    scope: str = DEPLOYMENT,
) -> APIError:
    """
    An error caused upstream; C{retryable} ones let the next target try.
    Its C{outcome} is how the provider call ended, for metrics and the
    access log: C{unreachable}, C{malformed}, C{too_large} or C{error};
    its C{scope} where the fault lies (L{HOST}, L{DEPLOYMENT}, ...).
    """
    error = APIError(status, message, type=type, code=code, headers=headers)
    error.retryable = retryable
    error.provider = provider
    error.outcome = _OUTCOMES.get(code, "error")
    error.scope = scope
    return error


def unreachable(provider: str, reason: Failure) -> APIError:
    """
    The error for a request that never got a response, with a short cause
    and never Twisted's failure text.
    """
    cause, scope = "the connection failed", HOST
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
        # It was reached (a pooled connection it closed, or one it dropped
        # on this request): this deployment's failure, not its host's.
        cause, scope = "the connection was closed before a response", DEPLOYMENT
    return upstream_error(
        provider, 502, f"Provider '{provider}' is unreachable: {cause}.", UNREACHABLE,
        scope=scope)


def malformed(provider: str, what: str) -> APIError:
    """
    The error for an answer that is not a valid one; C{what} says how, in
    words (never the upstream's bytes).
    """
    return upstream_error(
        provider, 502, f"Provider '{provider}' sent a malformed response: {what}.", MALFORMED)


def too_large(provider: str, what: str, limit: int) -> APIError:
    """
    The error for an answer, or a part of one, over llmedge's bound.
    """
    return upstream_error(
        provider, 502,
        f"Provider '{provider}' sent {what} larger than llmedge accepts ({limit} bytes).",
        TOO_LARGE)


def first_byte_timeout(provider: str, seconds: float) -> APIError:
    return upstream_error(
        provider, 504,
        f"Provider '{provider}' sent no response within {seconds:g} seconds.",
        "upstream_timeout",
    )


def from_failure(provider: str, reason: Failure) -> APIError:
    """
    The client's error for a failure of the HTTP exchange with C{provider}
    (before or while its answer is read).
    """
    inner = reason.value
    if isinstance(inner, APIError):
        return inner
    if isinstance(inner, BodyTooLarge):
        return too_large(provider, "a response body", inner.limit)
    if isinstance(inner, ResponseFailed) and not isinstance(inner, ResponseNeverReceived):
        cause = inner.reasons[0].value if inner.reasons else None
        if isinstance(cause, HeadTooLarge):
            return too_large(provider, "a response head", cause.limit)
        if isinstance(cause, MalformedResponse):
            return malformed(provider, str(cause))
        if isinstance(cause, net.ConnectionLost | net.ConnectionDone):
            return malformed(provider, "the connection closed before the response was complete")
    return unreachable(provider, reason)
