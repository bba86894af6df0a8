# -*- test-case-name: tests.unit.test_upstream -*-
"""
What one POST to an upstream costs besides its bytes, kept to what must be
done per request.

A provider's own headers (its key, C{User-Agent}, configured ones) are the
same for every request: L{ProviderHeaders} renders their lines once, and a
request adds only its own few (request id, trace context). The first-byte
timeout (L{FirstByte}) is one timer and one pair of callbacks, not what
L{Deferred.addTimeout} builds: two closures and two more callbacks. Both
are on the path of every proxied request.
"""

from __future__ import annotations

from types import MappingProxyType

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from llmedge import __version__
from llmedge.providers.client import header_block
from llmedge.providers.upstream_errors import first_byte_timeout, from_failure

USER_AGENT = f"llmedge/{__version__}".encode()


class ProviderHeaders:
    """
    The headers sent with every request to one provider, by lower-case
    name: L{USER_AGENT} and the JSON content type unless configured
    otherwise, the configured ones, and those its provider sets (its key).

    Their header lines are rendered at the first request after a change;
    a request naming one of them itself (a Messages client's
    C{anthropic-version}) gets the lines without it, also kept.
    """

    #: Variants without some names kept; the names come from llmedge's
    #: code (a handful), this only bounds it.
    max_variants = 16

    def __init__(self, configured: dict[str, str] | None) -> None:
        self._headers = {b"user-agent": USER_AGENT, b"content-type": b"application/json"}
        for name, value in (configured or {}).items():
            self._headers[name.lower().encode()] = value.encode()
        self._lines: bytes | None = None
        self._without: dict[tuple[bytes, ...], bytes] = {}

    @property
    def view(self) -> MappingProxyType:
        """
        The headers, read-only: L{set} changes them.
        """
        return MappingProxyType(self._headers)

    def set(self, name: bytes, value: bytes) -> None:
        """
        Send C{value} as C{name} (lower-case) from the next request on.
        """
        self._headers[name] = value
        self._lines = None
        self._without.clear()

    def lines(self, call_headers: dict[str, str]) -> tuple[bytes, dict[bytes, bytes]]:
        """
        The header lines for a request with C{call_headers} (which win over
        the provider's of the same name), and those as bytes, to write
        after the lines.

        @raise ValueError: a configured name the client writes itself
            (C{Host}): no request can be sent.
        """
        own = self._headers
        headers = {}
        overridden = ()
        for name, value in call_headers.items():
            name = name.encode("latin-1")
            if name in own:
                overridden += (name,)
            headers[name] = value.encode("latin-1")
        lines = self._without.get(overridden) if overridden else self._lines
        if lines is None:
            lines = self._render(overridden)
        return lines, headers

    def _render(self, overridden: tuple[bytes, ...]) -> bytes:
        own = self._headers
        if not overridden:
            lines = self._lines = header_block(own)
            return lines
        lines = header_block({k: v for k, v in own.items() if k not in overridden})
        if len(self._without) >= self.max_variants:
            self._without.clear()
        self._without[overridden] = lines
        return lines


class FirstByte:
    """
    The first-byte timeout of one request to C{provider}: a timer that
    cancels C{request} after C{seconds}, and the callbacks (L{arrived},
    L{failed}) that stop it and turn a failure into the client's error.
    """

    __slots__ = ("_provider", "_seconds", "_request", "_timer", "_expired")

    def __init__(self, provider: str, clock: IReactorTime, seconds: float,
                 request: Deferred) -> None:
        self._provider = provider
        self._seconds = seconds
        self._request = request
        self._expired = False
        self._timer = clock.callLater(seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._request.cancel()

    def arrived(self, response: IResponse) -> IResponse:
        self._timer.cancel()
        return response

    def failed(self, reason: Failure):
        if self._expired:
            # The timer cancelled the request (CancelledError): name the
            # real cause here.
            raise first_byte_timeout(self._provider, self._seconds)
        self._timer.cancel()
        if reason.check(CancelledError):
            return reason
        raise from_failure(self._provider, reason)
