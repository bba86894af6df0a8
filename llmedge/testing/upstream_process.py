# -*- test-case-name: tests.integration.test_fake_upstream -*-
"""
L{FakeUpstream}: the fake LLM provider (L{llmedge.testing.upstream}) in a
child process, for tests that put a real llmedge (L{Daemon}) in front of it
or talk to it with a real client.

A process rather than an in-test server so that synchronous tests (the
official SDKs, subprocesses, curl) can use it while nothing in the test
process runs a reactor. It is started on a free port (C{tcp:0}) and learns
the port from the fake's one "listening on" line, as L{Daemon} does; its
log is read over HTTP with the standard library only.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

from llmedge.testing.fake_process import FakeServerProcess
from llmedge.testing.upstream_options import BadOption


class FakeUpstream(FakeServerProcess):
    """
    A running C{python -m llmedge.testing.upstream} child process.

    @ivar base_url: C{"http://127.0.0.1:PORT"}, once started; the OpenAI API
        is under C{base_url + "/v1"}.
    """

    name = "fake upstream"
    module = "llmedge.testing.upstream"

    def log(self) -> list[dict[str, Any]]:
        """
        Every request the fake saw since the last L{reset}, oldest first;
        the fields are described in L{llmedge.testing.upstream.FakeLog}.
        """
        return self._call("GET", "/_fake/log")

    def reset(self) -> None:
        """
        Forget the requests seen so far, and so start every C{fail-first}
        count over; options set with L{behave} stay.
        """
        self._call("POST", "/_fake/reset")

    def wait_for(self, n: int, field: str = "finished_at", timeout: float = 10.0) -> dict:
        """
        Block until request C{n} (its log entry's C{n}) has C{field} set,
        C{"finished_at"} or C{"disconnected_at"}, and return its entry.

        The fake answers when it happens, so this waits on the event, not on
        a guess; after C{timeout} seconds it raises L{TimeoutError}.
        """
        return self._wait("/_fake/wait", {"n": n, "field": field}, timeout,
                          f"request {n} has no {field}")

    def behave(self, name: str, options: str = "") -> None:
        """
        From now on, requests for models with C{name=NAME} behave as their
        model name says plus C{options} (C{"slow-headers=0.3"}, in the same
        language; run-time options win); C{""} clears them. NAME's
        C{fail-first} count starts over. See
        L{llmedge.testing.upstream_options}.

        @raise BadOption: the fake refused the name or the options (the
            message says why); nothing was changed.
        """
        try:
            self._call("POST", "/_fake/behave", {"name": name, "options": options})
        except urllib.error.HTTPError as e:
            if e.code != 400:
                raise
            raise BadOption(json.load(e)["error"]) from None
