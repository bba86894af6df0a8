# -*- test-case-name: tests.unit.test_auth -*-
"""
L{Authenticated}: API keys, checked before anything else runs.

Clients send their key as C{Authorization: Bearer <key>} (the OpenAI SDKs)
or C{x-api-key: <key>} (Anthropic-style clients); both at once, or either
sent twice, must name one key, or a confused client could be authenticated
as the wrong caller.

The wrapper guards the whole tree, with a short list of public path
prefixes (C{/health} by default), rather than being put around chosen
subtrees: one place then says what is open, and a path added later is
protected unless someone opens it on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.logger import Logger
from twisted.web.resource import IResource

from llmedge.errors import APIError, invalid_api_key, missing_api_key
from llmedge.keys import KeyRing
from llmedge.web.wrapper import Wrapper


def _values(request, name: bytes) -> list[str]:
    """
    Every non-blank value of header C{name}, stripped: a header sent twice
    is two values, and each must be heard.
    """
    raw = request.requestHeaders.getRawHeaders(name) or ()
    return [text for text in (value.decode("latin-1").strip() for value in raw) if text]


def _one(keys: list[str], what: str) -> str | None:
    if len(set(keys)) > 1:
        raise invalid_api_key(f"The request carries {what} headers naming different keys.")
    return keys[0] if keys else None


def presented_key(request) -> str | None:
    """
    The key a request carries, or L{None} when it carries none.

    Every value of both headers counts, not just the last one Twisted's
    C{getHeader} would give: a request naming two keys is refused rather
    than authenticated as whichever a proxy on the way happened to put
    last. The same key sent twice is one key.

    @raise APIError: 401 when the headers name different keys, or the
        Authorization header uses a scheme other than Bearer with no
        x-api-key beside it.
    """
    from_header = _one(_values(request, b"x-api-key"), "x-api-key")
    bearers = []
    for authorization in _values(request, b"authorization"):
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            if credentials.strip():
                bearers.append(credentials.strip())
        elif not from_header:
            raise invalid_api_key(
                "Unsupported Authorization scheme; use 'Authorization: Bearer YOUR_KEY'."
            )
    bearer = _one(bearers, "Authorization")
    if from_header and bearer and from_header != bearer:
        raise invalid_api_key(
            "The x-api-key and Authorization headers carry different keys."
        )
    return from_header or bearer


def is_public(path: bytes, prefixes: Sequence[bytes]) -> bool:
    """
    Whether C{path} is one of C{prefixes} or below one, segment-wise
    (C{/health} covers C{/health/live}, not C{/healthz}).
    """
    return any(
        path == prefix or path.startswith(prefix.rstrip(b"/") + b"/") for prefix in prefixes
    )


class Authenticated(Wrapper):
    """
    Let a request through when it brings a configured key (recorded as
    C{request.api_key}) or asks for a public path.
    """

    _log = Logger()

    def __init__(
        self, wrapped: IResource, keys: KeyRing, public: Sequence[str] = ("/health",)
    ) -> None:
        super().__init__(wrapped)
        self._keys = keys
        self._public = tuple(p.encode("utf-8") for p in public)

    def check(self, request) -> APIError | None:
        if is_public(request.path, self._public):
            return None
        try:
            key = presented_key(request)
        except APIError as refusal:
            return refusal
        if key is None:
            return missing_api_key()
        found = self._keys.lookup(key)
        if found is None:
            return invalid_api_key()
        request.api_key = found
        return None
