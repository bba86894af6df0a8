# -*- test-case-name: tests.integration.test_hostile_upstream_fake -*-
"""
L{HostileUpstream}: the hostile fake upstream (L{llmedge.testing.hostile})
in a child process, to stand behind a real llmedge (L{Daemon}) and send it
whatever a test scripts.

A process for the same reasons as L{llmedge.testing.FakeUpstream}: the
test process runs no reactor, so synchronous clients and the daemon's own
process can both talk to it. Its control paths are called with the
standard library only.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from llmedge.testing.fake_process import FakeServerProcess


class HostileUpstream(FakeServerProcess):
    """
    A running C{python -m llmedge.testing.hostile} child process.

    @ivar base_url: C{"http://127.0.0.1:PORT"}, once started; point a
        provider's C{base_url} at C{base_url + "/v1"} (openai kind) or
        C{base_url} (anthropic kind).
    @ivar host_port: C{(host, port)}, for raw sockets.
    """

    name = "hostile upstream"
    module = "llmedge.testing.hostile"

    def log(self) -> list[dict[str, Any]]:
        """
        What the fake did per request since the last L{reset}, oldest
        first: C{n}, C{method}, C{path}, C{model}, C{x_request_id},
        C{scenario}, C{bytes_sent}, C{paused}, C{closed_at}, C{closed_by}
        (L{llmedge.testing.hostile_log.HostileLog}).
        """
        return self._call("GET", "/_hostile/log")

    def reset(self) -> None:
        """
        Forget the log and any scripts not yet used.
        """
        self._call("POST", "/_hostile/reset")

    def wait_closed(self, n: int, timeout: float = 10.0) -> dict[str, Any]:
        """
        Block until request C{n}'s connection has closed (either side),
        and return its log entry; the fake answers when it happens.

        @raise TimeoutError: it has not within C{timeout} seconds.
        """
        return self._wait("/_hostile/wait", {"n": n}, timeout,
                          f"request {n}'s connection still open")

    def script(self, request_id: str, pieces: Sequence[bytes], interval: float = 0.0,
               then: str = "close") -> None:
        """
        Answer the next request whose C{x-request-id} is C{request_id}
        with exactly C{pieces}, C{interval} seconds apart, then
        C{"close"} the connection, C{"keep"} it for the next request,
        C{"hang"} (keep it, answer nothing more) or C{"abort"} it (reset).
        """
        self._call("POST", "/_hostile/script", {
            "id": request_id, "pieces": [base64.b64encode(p).decode() for p in pieces],
            "interval": interval, "then": then,
        })
