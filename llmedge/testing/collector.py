# -*- test-case-name: tests.integration.test_otlp -*-
"""
L{FakeCollector}: an OTLP/HTTP trace collector for tests, shipped with the
package beside L{llmedge.testing.daemon.Daemon}.
"""

from __future__ import annotations

import threading


class FakeCollector:
    """
    An OTLP/HTTP trace collector on loopback that keeps what it receives:
    point C{OTLP_ENDPOINT} at L{url} and read L{spans}.

    A plain threaded HTTP server, so synchronous tests can use it while the
    daemon under test runs in its own process. Decoding needs the
    C{llmedge[otel]} extra (it brings C{opentelemetry-proto}).
    """

    def __init__(self) -> None:
        import http.server

        received = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % (self._server.server_address[1],)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def spans(self) -> list[dict]:
        """
        Every span received so far, as dicts with hex ids, C{name},
        C{kind} (the OTLP enum's name) and C{attributes}.
        """
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        found = []
        for path, body in self.requests:
            if path != "/v1/traces":
                continue
            message = ExportTraceServiceRequest.FromString(body)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        found.append({
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "kind": Span.SpanKind.Name(span.kind),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": {
                                a.key: getattr(a.value, a.value.WhichOneof("value"))
                                for a in span.attributes
                            },
                        })
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
