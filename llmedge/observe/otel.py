# -*- test-case-name: tests.integration.test_otlp -*-
"""
Exporting spans over OTLP/HTTP with the OpenTelemetry SDK: the optional
extra C{llmedge[otel]}, used only when C{OTLP_ENDPOINT} is set.

llmedge does its own trace bookkeeping (L{llmedge.observe.tracing}): ids are
chosen when a request arrives, sent upstream, logged. Spans are made only
when the request ends, from its L{Exchange}, with the ids already chosen and
the times already measured: one server span per request and, when a
provider was called, one client span for the call. Making them at the end
keeps the SDK off the request path; the SDK's batch processor then exports
from its own thread, so the reactor never waits on the collector.

Nothing here imports OpenTelemetry at module level: without the setting,
the SDK is never loaded.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from llmedge.config import ConfigError
from llmedge.observe.exchange import Exchange

SERVICE_NAME = "llmedge"


def traces_url(endpoint: str) -> str:
    """
    The OTLP/HTTP traces URL for a collector's base URL, as the
    OpenTelemetry convention has it (C{<base>/v1/traces}).
    """
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class _ChosenIds:
    """
    An SDK id generator that hands out the ids llmedge already chose.
    """

    def __init__(self) -> None:
        self.span_ids: deque[int] = deque()
        self.trace_ids: deque[int] = deque()

    def generate_span_id(self) -> int:
        return self.span_ids.popleft()

    def generate_trace_id(self) -> int:
        return self.trace_ids.popleft()

    def is_trace_id_random(self) -> bool:
        return True


class SpanExporter:
    """
    Turns finished requests into spans and exports them in batches.

    @raise ConfigError: if the OpenTelemetry packages are not installed.
    """

    def __init__(self, endpoint: str, reactor, schedule_delay_millis: int = 1000) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError(
                "OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
                "pip install 'llmedge[otel]'"
            ) from None
        self._trace = trace
        self._reactor = reactor
        self._ids = _ChosenIds()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME}),
            id_generator=self._ids,
        )
        self._provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=traces_url(endpoint)),
                schedule_delay_millis=schedule_delay_millis,
            )
        )
        self._tracer = self._provider.get_tracer("llmedge")

    def export(self, exchange: Exchange, name: str, attributes: dict[str, Any],
               ended: float) -> None:
        """
        Make the spans of one finished request (if its trace is sampled).
        """
        if exchange.trace_id is None or not exchange.trace_sampled:
            return
        trace = self._trace
        parent = None
        if exchange.parent_span_id is not None:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
                int(exchange.trace_id, 16), int(exchange.parent_span_id, 16),
                is_remote=True, trace_flags=trace.TraceFlags(1))))
        else:
            self._ids.trace_ids.append(int(exchange.trace_id, 16))
        self._ids.span_ids.append(int(exchange.span_id, 16))
        server = self._tracer.start_span(
            name, context=parent, kind=trace.SpanKind.SERVER,
            attributes=_clean(attributes), start_time=_ns(exchange.started))
        if exchange.upstream_span_id is not None and exchange.upstream_started is not None:
            self._ids.span_ids.append(int(exchange.upstream_span_id, 16))
            client = self._tracer.start_span(
                f"{exchange.endpoint} {exchange.provider}",
                context=trace.set_span_in_context(server), kind=trace.SpanKind.CLIENT,
                attributes=_clean({
                    "gen_ai.system": exchange.provider,
                    "gen_ai.request.model": exchange.model,
                    "gen_ai.usage.input_tokens": exchange.prompt_tokens,
                    "gen_ai.usage.output_tokens": exchange.completion_tokens,
                    "llmedge.outcome": exchange.outcome,
                }),
                start_time=_ns(exchange.upstream_started))
            client.end(end_time=_ns(exchange.upstream_started + (exchange.upstream_seconds or 0)))
        server.end(end_time=_ns(ended))

    def shutdown(self) -> Deferred[None]:
        """
        Flush what is batched and stop, from a thread: the flush waits on
        the network.
        """
        if self._provider is None:
            return succeed(None)
        provider, self._provider = self._provider, None
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), provider.shutdown)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}
