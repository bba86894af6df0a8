# -*- test-case-name: tests.integration.test_fake_upstream -*-
"""
L{FakeServerProcess}: a fake provider of L{llmedge.testing} in a child
process, what L{llmedge.testing.FakeUpstream} and
L{llmedge.testing.HostileUpstream} share.

A process rather than an in-test server so that synchronous tests (the
official SDKs, subprocesses, curl) can use it while nothing in the test
process runs a reactor. It is started on a free port (C{tcp:0}) and learns
the port from the fake's one C{"<name> listening on tcp:HOST:PORT"} line,
as L{llmedge.testing.Daemon} does; its control paths are called over HTTP
with the standard library only.
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


class FakeServerProcess(ChildProcess):
    """
    A running C{python -m <module> --listen ENDPOINT} child process.

    @cvar module: the fake's module, run with C{-m}.
    @ivar base_url: C{"http://127.0.0.1:PORT"}, once started.
    @ivar host_port: C{(host, port)}, once started, for raw sockets.
    """

    module = ""

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
        self.host_port: tuple[str, int] = ("", 0)
        self._listening = re.compile(
            rf"^{re.escape(self.name)} listening on tcp:(?P<host>\S+):(?P<port>\d+)$")

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", self.module, "--listen", self.listen]

    def ready(self, line: str) -> bool:
        match = self._listening.match(line)
        if match:
            self.host_port = (match["host"], int(match["port"]))
            self.base_url = f"http://{match['host']}:{match['port']}"
        return bool(self.base_url)

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def _wait(self, path: str, query: dict[str, Any], timeout: float, what: str) -> Any:
        """
        Call a control path that answers when something happened, or 408
        after C{timeout} seconds, which raises L{TimeoutError} naming
        C{what}.
        """
        query = urllib.parse.urlencode({**query, "timeout": timeout})
        try:
            return self._call("GET", f"{path}?{query}", timeout=timeout + 10)
        except urllib.error.HTTPError as e:
            if e.code == 408:
                raise TimeoutError(f"{what} after {timeout}s") from None
            raise
