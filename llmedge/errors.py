# -*- test-case-name: tests.unit.test_errors -*-
"""
Errors in the shape the OpenAI API uses, and the one place that maps failures
to HTTP statuses.

Every error a client can see goes through L{APIError}: clients written against
OpenAI (the official SDKs among them) parse C{{"error": {"message", "type",
"param", "code"}}} to pick the exception they raise, so an HTML page or a
traceback would surface as an unhelpful decoding error in the application.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from http import HTTPStatus

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES

from llmedge.twisted_insides import gone

_log = Logger()


class APIError(Exception):
    """
    An error to report to the client as OpenAI error JSON.

    @ivar status: the HTTP status code.
    @ivar message: human-readable text; never contains a secret.
    @ivar type: OpenAI's error type (C{invalid_request_error}, ...).
    @ivar param: the request field at fault, or L{None}.
    @ivar code: a machine-readable code, or L{None}.
    @ivar headers: extra response headers, as C{(name, value)} byte pairs.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = tuple(headers)

    def __repr__(self) -> str:
        return (
            f"APIError({self.status}, {self.message!r}, type={self.type!r}, "
            f"param={self.param!r}, code={self.code!r})"
        )

    def body(self) -> bytes:
        """
        The JSON document that carries this error.
        """
        return json.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        ).encode("utf-8")


def invalid_request(
    message: str, param: str | None = None, code: str | None = None
) -> APIError:
    """
    400: the request is well-formed HTTP but its content is wrong.
    """
    return APIError(400, message, param=param, code=code)


def not_found(message: str, code: str | None = None) -> APIError:
    """
    404 for a path, or for a named thing, that does not exist.
    """
    return APIError(404, message, code=code)


def unknown_url(method: bytes, path: bytes) -> APIError:
    """
    404 for a path llmedge does not serve, worded as OpenAI words it.
    """
    return not_found(
        f"Invalid URL ({method.decode('latin-1')} {path.decode('latin-1')})",
        code="unknown_url",
    )


def model_not_found(model: str) -> APIError:
    """
    404 for a model name that no route serves.
    """
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def method_not_allowed(method: bytes, allowed: Sequence[bytes]) -> APIError:
    """
    405, with the C{Allow} header RFC 9110 requires.
    """
    return APIError(
        405,
        f"Method {method.decode('latin-1')} is not allowed here; "
        f"use {', '.join(m.decode('ascii') for m in allowed)}.",
        code="method_not_allowed",
        headers=[(b"Allow", b", ".join(allowed))],
    )


def unsupported_media_type(got: str | None) -> APIError:
    """
    415: the body is not declared as JSON.
    """
    what = "no Content-Type" if got is None else f"Content-Type {got!r}"
    return APIError(
        415,
        f"Request body must be JSON (Content-Type: application/json); got {what}.",
        code="unsupported_media_type",
    )


def request_too_large(limit: int) -> APIError:
    """
    413: the body is bigger than C{MAX_REQUEST_SIZE}.
    """
    return APIError(
        413,
        f"Request body is larger than the limit of {limit} bytes.",
        code="request_too_large",
    )


_BEARER = [(b"WWW-Authenticate", b'Bearer realm="llmedge"')]


def missing_api_key() -> APIError:
    """
    401 for a request that brought no key.
    """
    return APIError(
        401,
        "You didn't provide an API key. Send it as 'Authorization: Bearer "
        "YOUR_KEY' or in the 'x-api-key' header.",
        type="authentication_error",
        code="missing_api_key",
        headers=_BEARER,
    )


def invalid_api_key(message: str = "Incorrect API key provided.") -> APIError:
    """
    401 for a key llmedge does not know. The message never repeats the key.
    """
    return APIError(
        401, message, type="authentication_error", code="invalid_api_key", headers=_BEARER
    )


def rate_limited(message: str, headers: Iterable[tuple[bytes, bytes]]) -> APIError:
    """
    429; C{headers} carry C{Retry-After} and the C{x-ratelimit-*} set.
    """
    return APIError(
        429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=headers
    )


def rate_limit_unavailable() -> APIError:
    """
    503 when the shared rate-limit store cannot decide and
    C{REDIS_FAILURE_POLICY=fail-closed} says not to admit blindly.
    """
    return APIError(
        503,
        "Rate limiting is temporarily unavailable, so the request was not admitted. "
        "Try again shortly.",
        type="server_error",
        code="rate_limit_unavailable",
        headers=[(b"Retry-After", b"1")],
    )


def bad_request() -> APIError:
    """
    400 for a request that is not valid HTTP/1.1.
    """
    return APIError(
        400,
        "The request is not valid HTTP/1.1 (malformed request line, header, "
        "chunk or body framing).",
        code="bad_request",
    )


def uri_too_long() -> APIError:
    """
    414 for a request line longer than the server reads.
    """
    return APIError(414, "The request line is too long.", code="uri_too_long")


def headers_too_large() -> APIError:
    """
    431 for a header, or a header block, over the server's limits.
    """
    return APIError(
        431, "The request headers are too large or too many.", code="headers_too_large")


def request_timeout(what: str) -> APIError:
    """
    408 for a request whose head or body did not arrive in time.
    """
    return APIError(
        408, f"The request {what} did not arrive in time.", code="request_timeout")


def too_many_connections(limit: int) -> APIError:
    """
    503 for a connection past C{max_connections}.
    """
    return APIError(
        503,
        f"The server is serving its maximum of {limit} connections; retry later.",
        type="server_error",
        code="too_many_connections",
        headers=[(b"Retry-After", b"1")],
    )


def too_many_in_flight(bound: int) -> APIError:
    return APIError(
        429,
        f"Too many requests in flight for this API key: at most {bound} at once. "
        "Wait for one to finish, then retry.",
        type="rate_limit_error",
        code="concurrency_limit_exceeded",
        headers=[(b"Retry-After", b"1")],
    )


def token_budget_exceeded(needed: int, per_minute: int) -> APIError:
    """
    429 for a request that could never fit in its key's token bucket (as
    OpenAI answers it); no Retry-After, since waiting cannot help.
    """
    return APIError(
        429,
        f"Request too large for this API key's tokens per minute: limit {per_minute}, "
        f"requested {needed}. Lower max_tokens or the prompt.",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param="max_tokens",
    )


def mock_limit_exceeded(message: str, param: str) -> APIError:
    """
    400 for a request that would make the embedded mock provider do more
    work than one request may (it shares the reactor with every other
    request); C{message} says which bound and how to stay within it.
    """
    return APIError(400, message, param=param, code="mock_limit_exceeded")


def deadline_exceeded() -> APIError:
    """
    504 for a request that ran out of time (C{SERVER_TIMEOUT_SECONDS}).
    """
    return APIError(
        504,
        "The request did not complete within the server's time limit.",
        type="server_error",
        code="timeout",
    )


def internal_error() -> APIError:
    """
    500 for a failure llmedge did not expect; the details go to the log only.
    """
    return APIError(
        500,
        "The server had an error while processing your request.",
        type="server_error",
        code="internal_error",
    )


def error_from_failure(reason: Failure) -> APIError:
    """
    Map any failure to the error the client should see.

    L{APIError}s are passed through; anything else is a bug or an unexpected
    condition, logged here with its traceback and reported to the client as a
    bare 500 so no internal detail leaks.
    """
    if reason.check(APIError):
        return reason.value
    if reason.check(TimeoutError):
        return deadline_exceeded()
    if not reason.check(CancelledError):
        _log.failure("Unexpected failure while handling a request", reason)
    return internal_error()


def write_error(request, error: APIError) -> None:
    """
    Finish C{request} with C{error}, unless the request is already over.

    Safe to call from any callback: a request that finished or whose client
    went away is left alone, so C{finish()} is never called twice.
    """
    if gone(request):
        return
    exchange = getattr(request, "exchange", None)
    if exchange is not None:
        exchange.error_code = error.code or error.type
    if request.startedWriting:
        # Too late for a status line: the caller must end the body its own
        # way (streams send an error event); closing is all we can do here.
        request.finish()
        return
    shape = getattr(request, "error_body", None)
    body = error.body() if shape is None else shape(error)
    request.setResponseCode(error.status)
    for name, value in error.headers:
        request.setHeader(name, value)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    request.write(body)
    request.finish()


def reason_phrase(status: int) -> bytes:
    """
    The reason phrase of C{status}: Twisted's, or the standard's where
    Twisted's table has none (429 Too Many Requests, 431, 451, ...), so no
    answer llmedge gives says C{Unknown Status}.
    """
    reason = RESPONSES.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            reason = b"Error"
    return reason


def raw_response(
    error: APIError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> bytes:
    """
    A complete HTTP/1.1 response carrying C{error}, closing the connection.

    For the rare refusals made before Twisted has a request to respond
    through (a body over the size limit is refused while it is still being
    received), so the bytes go straight to the transport.
    """
    body = error.body()
    lines = [b"HTTP/1.1 %d %s" % (error.status, reason_phrase(error.status))]
    all_headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % (len(body),)),
        (b"Connection", b"close"),
        *error.headers,
        *headers,
    ]
    lines.extend(name + b": " + value for name, value in all_headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
