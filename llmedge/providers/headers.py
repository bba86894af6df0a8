# -*- test-case-name: tests.unit.test_upstream_headers -*-
"""
Which upstream response headers reach the client, and in what form.

An upstream's headers are relayed only by name, from a fixed list (the
provider's own rate limits and processing time, which clients and their
SDKs read), matched exactly: a prefix match would pass whatever a provider
or a proxy in between chose to call C{x-ratelimit-anything}. Each value is
checked before it goes out: printable ASCII, spaces and tabs only, and at
most a bound in length. A NUL, a control byte or a 20 KB value in one
header would otherwise make the client's HTTP library refuse the whole
answer; such a value is dropped, never the answer. Only the first value of
a name is relayed: these headers have one.

The headers are read as L{HeaderPairs}, the pairs of the head as the
client parsed them (names lower-case), never put into a
L{twisted.web.http_headers.Headers}: on the path of every answer that
would check and clean each of them again for nothing.

C{Retry-After} is not relayed but rebuilt (L{retry_after}): clients sleep on
it, so it goes out as whole seconds, at least 1, whatever form the upstream
used (seconds, fractional seconds, C{retry-after-ms}, an HTTP date).
"""

from __future__ import annotations

import math
import re
from email.utils import parsedate_to_datetime

from llmedge.providers.client import HeaderPairs

#: The upstream headers relayed, by exact (lower-case) name.
RELAYED = frozenset(
    [b"openai-processing-ms"]
    + [b"x-ratelimit-%s-%s" % (what, of)
       for what in (b"limit", b"remaining", b"reset") for of in (b"requests", b"tokens")]
    + [b"anthropic-ratelimit-%s-%s" % (of, what)
       for of in (b"requests", b"tokens", b"input-tokens", b"output-tokens")
       for what in (b"limit", b"remaining", b"reset")]
)

#: The longest relayed value by default (upstream.max_header_value_bytes).
MAX_VALUE = 1024

#: Longest wait a client is told to make, in seconds (a day): a larger
#: upstream figure is a bug or a trap, not advice.
MAX_RETRY_AFTER = 86400

_SAFE = re.compile(rb"[\x20-\x7e\t]*\Z")


def clean_value(value: bytes, limit: int = MAX_VALUE) -> bytes | None:
    """
    C{value} without surrounding blanks, or L{None} when it may not go out:
    longer than C{limit}, or holding anything but printable ASCII, spaces
    and tabs.
    """
    if len(value) > limit or not _SAFE.match(value):
        return None
    return value.strip(b" \t")


def relayed_headers(headers: HeaderPairs,
                    limit: int = MAX_VALUE) -> tuple[tuple[bytes, bytes], ...]:
    """
    The upstream headers worth passing on to the client, checked, in the
    order their names first came; a name's later values are ignored, even
    when its first is dropped.
    """
    found = []
    seen: list[bytes] = []  # the relayed names met: two or three
    for name, value in headers:
        if name in RELAYED and name not in seen:
            seen.append(name)
            value = clean_value(value, limit)
            if value:
                found.append((name, value))
    return tuple(found)


def retry_after(headers: HeaderPairs, now: float) -> int | None:
    """
    How many whole seconds the upstream asked clients to wait (at least 1,
    at most L{MAX_RETRY_AFTER}), or L{None} when it did not say in a form
    understood: C{retry-after-ms} (what OpenAI and Azure send beside it),
    then C{Retry-After} as seconds (fractions rounded up) or as an HTTP
    date, counted from C{now}, then OpenAI's C{x-ratelimit-reset-*}.
    """
    seconds = None
    for name, scale in ((b"retry-after-ms", 0.001), (b"retry-after", 1.0)):
        value = headers.get(name)
        if value is None or len(value) > 64:
            continue
        try:
            seconds = float(value.strip()) * scale
        except ValueError:
            if scale == 1.0:
                seconds = _date(value, now)
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            break
        seconds = None
    if seconds is None:
        seconds = _reset(headers)
    if seconds is None:
        return None
    return max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))


_DURATION = re.compile(rb"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {b"ms": 0.001, b"s": 1.0, b"m": 60.0, b"h": 3600.0}


def _reset(headers: HeaderPairs) -> float | None:
    """
    The wait OpenAI's C{x-ratelimit-reset-requests}/C{-tokens} say
    (durations such as C{1s}, C{250ms}, C{6m0s}): of the limits that are
    spent (remaining 0), or of both, the longer.
    """
    waits = {}
    for kind in (b"requests", b"tokens"):
        value = headers.get(b"x-ratelimit-reset-" + kind)
        if value is None or len(value) > 32:
            continue
        parts = _DURATION.findall(value)
        if parts and b"".join(n + u for n, u in parts) == value.strip():
            remaining = headers.get(b"x-ratelimit-remaining-" + kind, b"")
            waits[kind] = (sum(float(n) * _UNITS[u] for n, u in parts), remaining.strip() == b"0")
    if not waits:
        return None
    spent = [wait for wait, out in waits.values() if out]
    return max(spent or [wait for wait, _ in waits.values()])


def _date(value: bytes, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value.decode("ascii").strip())
    except (ValueError, TypeError, UnicodeDecodeError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - now


def retry_after_header(headers: HeaderPairs, now: float) -> list[tuple[bytes, bytes]]:
    """
    The C{Retry-After} header for the client, as L{retry_after} reads the
    upstream's; none when it said nothing usable.
    """
    seconds = retry_after(headers, now)
    return [] if seconds is None else [(b"Retry-After", b"%d" % seconds)]
