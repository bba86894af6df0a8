# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
Errors in Anthropic's shape, both ways: what llmedge tells a client that
speaks Messages, and what llmedge makes of an Anthropic upstream's errors.

A Messages client (the anthropic SDKs, Claude Code) reads
C{{"type": "error", "error": {"type", "message"}}}: the SDK picks its
exception class from the HTTP status, and the C{type} is what programs
and people match on, so it is chosen from the status the way Anthropic's
own API does (their documented table; a 4xx it does not list is an
C{invalid_request_error} there too).

An Anthropic upstream's error is the other way round: it is mapped to the
L{APIError} llmedge reports, whatever the client's dialect. Failures of
llmedge's own account with the provider become 5xx, since the client's
request was not at fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from llmedge.errors import APIError

__all__ = ["error_body", "error_from_anthropic", "error_from_event"]

# Anthropic's error type for each status llmedge answers with (the SDK's
# ErrorType values, plus request_too_large which Anthropic documents for
# 413 though the SDK does not list it).
_TYPE_OF_STATUS = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# The HTTP status Anthropic documents for each error type, for errors that
# arrive inside a stream after its 200.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

# Provider messages are passed on, but a runaway one is cut short.
_MESSAGE_LIMIT = 500


def error_type(status: int) -> str:
    """
    Anthropic's error C{type} for an HTTP C{status}.
    """
    if status in _TYPE_OF_STATUS:
        return _TYPE_OF_STATUS[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(error: APIError, request_id: str | None = None) -> bytes:
    """
    The Anthropic error document for C{error}, with the C{request_id}
    Anthropic puts in its own when llmedge has one for the request.
    """
    document: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error.status), "message": error.message},
    }
    if request_id is not None:
        document["request_id"] = request_id
    return json.dumps(document).encode("utf-8")


def error_from_event(data: Any) -> APIError:
    """
    The error for the data of an C{error} event of an Anthropic stream,
    mapped as L{error_from_anthropic} maps an error response of the status
    Anthropic documents for its type.
    """
    error = data.get("error") if isinstance(data, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return _mapped(_STATUS_OF_TYPE.get(kind, 500), _message_of(error))


def _message_of(error: Any) -> str | None:
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message.strip():
        return message[:_MESSAGE_LIMIT]
    return None


def _parse(body: bytes) -> str | None:
    """
    The message of an Anthropic error document, or L{None} if C{body} is
    not one (an HTML page from a proxy in front, say): such bodies are never
    shown, since they may be anything.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return _message_of(document.get("error"))


def error_from_anthropic(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> APIError:
    """
    The error to report for an Anthropic error response.

    @param headers: the response headers; C{retry-after} is passed on.
    """
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    retry_after = lowered.get("retry-after")
    extra = [(b"Retry-After", retry_after.encode("latin-1"))] if retry_after else []
    return _mapped(status, _parse(body), extra)


def _mapped(
    status: int, said: str | None, headers: Iterable[tuple[bytes, bytes]] = ()
) -> APIError:
    """
    The error for Anthropic's C{status} and message. Failures of llmedge's
    own account with the provider (credentials, billing) and of the provider
    itself are 5xx: the client's request was not at fault.
    """
    if status in (401, 403):
        return APIError(
            502,
            "The model's provider rejected llmedge's credentials; the server's "
            "configuration needs fixing, your API key is not at fault.",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    if status == 402:
        return APIError(
            502,
            "The model's provider refused the request for a billing reason on "
            "llmedge's account.",
            type="upstream_error",
            code="upstream_error",
        )
    if status == 404:
        if said and "model" in said.lower():
            return APIError(404, said, param="model", code="model_not_found")
        return APIError(404, said or "The model's provider found nothing to answer.")
    if status == 413:
        return APIError(
            413,
            said or "The request is too large for the model's provider.",
            code="request_too_large",
        )
    if status == 429:
        return APIError(
            429,
            said or "The model's provider is rate limiting requests; retry later.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if 400 <= status < 500:
        return APIError(400, said or "The model's provider rejected the request.")
    if status == 529:
        return APIError(
            503,
            "The model's provider is overloaded; retry later."
            + (f" ({said})" if said else ""),
            type="upstream_error",
            code="upstream_overloaded",
            headers=headers,
        )
    return APIError(
        502,
        f"The model's provider failed to answer (HTTP {status})"
        + (f": {said}" if said else "."),
        type="upstream_error",
        code="upstream_error",
    )
