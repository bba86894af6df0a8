# -*- test-case-name: tests.unit.test_tracing -*-
"""
W3C trace context (C{traceparent}, C{tracestate}): accepted from clients,
continued upstream, and recorded in the access log, so one trace id follows
a call from the application through llmedge to the provider.

llmedge's part of a trace is one span per request: a fresh span id whose
parent is the client's span. Upstream calls carry
C{00-<trace id>-<our span id>-<flags>}, making llmedge the parent of the
provider's span. A malformed C{traceparent} is ignored (as the W3C
recommendation asks) and, with tracing on, a new trace is started.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from llmedge.randomness import random_bytes as _random_bytes

_TRACEPARENT = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?"
)
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
#: tracestate is a list of at most 32 members; longer values are dropped.
MAX_TRACESTATE = 512


@dataclass(frozen=True, slots=True)
class TraceContext:
    """
    Where one request sits in a trace.

    @ivar parent_id: the client's span id, or L{None} when llmedge started
        the trace.
    @ivar span_id: llmedge's own span for this request.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str
    state: str | None = None

    @property
    def sampled(self) -> bool:
        """
        Whether the trace's flags ask for it to be recorded.
        """
        return bool(int(self.flags, 16) & 1)

    def traceparent(self, span_id: str | None = None) -> str:
        """
        The C{traceparent} to send upstream: the given span (the provider
        call's) or llmedge's request span as the parent.
        """
        return f"00-{self.trace_id}-{span_id or self.span_id}-{self.flags}"


def parse_traceparent(value: bytes | None) -> tuple[str, str, str] | None:
    """
    C{(trace id, parent id, flags)} from a C{traceparent} header, or
    L{None} if it is absent or invalid.
    """
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id.decode(), parent_id.decode(), flags.decode()


def trace_context(
    traceparent: bytes | None,
    tracestate: bytes | None,
    generate: bool,
    random_bytes: Callable[[int], bytes] = _random_bytes,
) -> TraceContext | None:
    """
    This request's trace context: continued from the client's headers, or
    started here when C{generate} (C{ENABLE_TRACING}) allows, else L{None}.
    """
    parsed = parse_traceparent(traceparent)
    if parsed is None and not generate:
        return None
    span_id = random_bytes(8).hex()
    if parsed is None:
        return TraceContext(random_bytes(16).hex(), span_id, None, "01")
    trace_id, parent_id, flags = parsed
    state = None
    if tracestate and len(tracestate) <= MAX_TRACESTATE:
        state = tracestate.decode("latin-1").strip() or None
    return TraceContext(trace_id, span_id, parent_id, flags, state)
