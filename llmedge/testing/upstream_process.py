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
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from llmedge.testing.process import ChildProcess

#: How the fake announces its listener: "fake upstream listening on tcp:HOST:PORT".
LISTENING = re.compile(r"^fake upstream listening on tcp:(?P<host>\S+):(?P<port>\d+)$")


class FakeUpstream(ChildProcess):
    """
    A running C{python -m llmedge.testing.upstream} child process.

    @ivar base_url: C{"http://127.0.0.1:PORT"}, once started; the OpenAI API
        is under C{base_url + "/v1"}.
    """

    name = "fake upstream"

    def __init__(
        self,
        listen: str = "tcp:0:interface=127.0.0.1",
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(env, start_timeout)
        self.listen = listen
        self.python = python
        self.base_url = ""

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", "llmedge.testing.upstream", "--listen", self.listen]

    def ready(self, line: str) -> bool:
        match = LISTENING.match(line)
        if match:
            self.base_url = f"http://{match['host']}:{match['port']}"
        return bool(self.base_url)

    def _call(self, method: str, path: str, timeout: float = 10.0) -> Any:
        request = urllib.request.Request(self.base_url + path, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def log(self) -> list[dict[str, Any]]:
        """
        Every request the fake saw since the last L{reset}, oldest first;
        the fields are described in L{llmedge.testing.upstream.FakeLog}.
        """
        return self._call("GET", "/_fake/log")

    def reset(self) -> None:
        """
        Forget the requests seen so far.
        """
        self._call("POST", "/_fake/reset")

    def wait_for(self, n: int, field: str = "finished_at", timeout: float = 10.0) -> dict:
        """
        Block until request C{n} (its log entry's C{n}) has C{field} set,
        C{"finished_at"} or C{"disconnected_at"}, and return its entry.

        The fake answers when it happens, so this waits on the event, not on
        a guess; after C{timeout} seconds it raises L{TimeoutError}.
        """
        query = urllib.parse.urlencode({"n": n, "field": field, "timeout": timeout})
        try:
            return self._call("GET", f"/_fake/wait?{query}", timeout=timeout + 10)
        except urllib.error.HTTPError as e:
            if e.code == 408:
                raise TimeoutError(f"request {n} has no {field} after {timeout}s") from None
            raise
