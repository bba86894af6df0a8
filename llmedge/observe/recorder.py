# -*- test-case-name: tests.unit.test_observe -*-
"""
L{Recorder}: where a request's end is turned into metrics and one access
log event.

It replaces Twisted's access log (C{Site.log}, a combined-format line that
knows nothing of keys, models or upstream time). Every request ends here
exactly once, whether it finished, was refused while its body was still
arriving, or lost its client midway (logged with status 499, as nginx
does, and C{aborted: true}).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from llmedge.observe.exchange import Exchange, route_of
from llmedge.observe.metrics import Finished, Metrics

#: The status logged for a request whose client went away first.
CLIENT_CLOSED = 499

_MAX_FIELD = 200

#: Access events have a namespace of their own, to route or filter them.
access_log = Logger(namespace="llmedge.access")


def _short(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if len(value) <= _MAX_FIELD else value[:_MAX_FIELD] + "..."


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Recorder:
    """
    Count and log each request as it ends.

    @param metrics: the service's metrics, or L{None} when they are off.
    """

    def __init__(self, clock: IReactorTime, metrics: Metrics | None, spans=None) -> None:
        self.clock = clock
        self.metrics = metrics
        self.spans = spans

    def exchange(self) -> Exchange:
        """
        A new record, started now.
        """
        return Exchange(started=self.clock.seconds())

    def refused(self, reason: str) -> None:
        """
        A connection or request refused while being read (it never becomes
        a request with an access event): counted by reason.
        """
        if self.metrics is not None:
            self.metrics.refused(reason)

    def connection(self, change: int) -> None:
        """
        A client connection opened (+1) or closed (-1).
        """
        if self.metrics is not None:
            self.metrics.open_connections.inc(change)

    def unread(self, change: int) -> None:
        """
        A connection stopped being read because its client does not read
        its answers (+1), or is read again or gone (-1).
        """
        if self.metrics is not None:
            self.metrics.unread_connections.inc(change)

    def started(self) -> None:
        if self.metrics is not None:
            self.metrics.in_flight.inc()

    def finished(self, request, in_flight: bool) -> None:
        """
        Record C{request}, which has just ended.

        @param in_flight: whether L{started} counted it.
        """
        exchange: Exchange = request.exchange
        ended = self.clock.seconds()
        duration = max(0.0, ended - exchange.started)
        status = CLIENT_CLOSED if exchange.aborted else request.code
        method = (request.method or b"-").decode("latin-1")
        route = route_of(request.path or b"")
        key = request.api_key.id if request.api_key is not None else None
        metrics = self.metrics
        if metrics is not None:
            if in_flight:
                metrics.in_flight.dec()
            metrics.record(
                Finished(method, route, status, duration, request.sentLength, key, exchange)
            )
        if self.spans is not None:
            self.spans.export(exchange, f"{method} {route}", {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
                "llmedge.request_id": request.request_id,
                "llmedge.key": key,
                "error.type": exchange.error_code,
            }, ended)
        upstream = exchange.upstream_seconds
        client = request.getClientAddress()
        duration_ms = _ms(duration)
        access_log.info(
            "{msg}",
            log_plain=True,  # every value below is a str, number, bool or None
            msg=f"{method} {route} {status} {duration_ms}ms",
            request_id=request.request_id,
            method=_short(method),
            route=route,
            path=_short(request.path) if route == "other" else None,
            status=status,
            duration_ms=duration_ms,
            upstream_ms=_ms(upstream),
            overhead_ms=_ms(duration - (upstream or 0.0)),
            first_token_ms=_ms(exchange.first_token_seconds),
            request_bytes=exchange.request_bytes,
            response_bytes=request.sentLength,
            key=key,
            model=_short(exchange.model),
            provider=exchange.provider,
            prompt_tokens=exchange.prompt_tokens,
            completion_tokens=exchange.completion_tokens,
            stream=exchange.stream,
            client=getattr(client, "host", None) or str(client),
            user_agent=_short(request.getHeader(b"user-agent")),
            trace_id=exchange.trace_id,
            span_id=exchange.span_id,
            error=exchange.error_code,
            aborted=exchange.aborted,
            strategy=exchange.strategy,
            cache=exchange.cache,
            attempts=exchange.attempts if len(exchange.attempts) > 1
            or (exchange.attempts and exchange.attempts[0]["outcome"] != "ok") else None,
        )
