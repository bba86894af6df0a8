# -*- test-case-name: tests.integration.test_openai_sdk -*-
"""
Helpers for tests that need a real llmedge: shipped with the package, as
treq ships C{treq.testing}, so applications can test against the daemon
they deploy.

L{Daemon} starts C{twistd --nodaemon llmedge} as a child process on a free
loopback port (C{tcp:0}), learns the port from the daemon's own
"listening on" log line (no guessing, no race for the port), and stops it
with SIGTERM as systemd would.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence

from llmedge.testing.process import ChildProcess, DaemonError

#: How the daemon announces each listener: "llmedge listening on tcp:HOST:PORT".
LISTENING = re.compile(r"llmedge listening on (?P<kind>\w+):(?P<address>\S+?)(?=[\"\s]|$)")

_TWISTD = "from twisted.scripts.twistd import run; run()"


class Daemon(ChildProcess):
    """
    A running C{twistd llmedge} child process.

    @ivar addresses: every listener's address as logged, e.g.
        C{"tcp:127.0.0.1:40123"}.
    """

    name = "llmedge"

    def __init__(
        self,
        args: Sequence[str] = ("--listen", "tcp:0:interface=127.0.0.1"),
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        start_timeout: float = 30.0,
        listeners: int | None = None,
    ) -> None:
        super().__init__(env, start_timeout)
        self.args = list(args)
        self.python = python
        self.listeners = listeners or max(1, self.args.count("--listen"))
        self.addresses: list[str] = []

    @property
    def command(self) -> list[str]:
        return [
            self.python, "-c", _TWISTD,
            "--nodaemon", "--pidfile=", "--logfile=-", "llmedge", *self.args,
        ]

    def ready(self, line: str) -> bool:
        match = LISTENING.search(line)
        if match:
            self.addresses.append(f"{match['kind']}:{match['address']}")
        return len(self.addresses) >= self.listeners

    @property
    def log(self) -> str:
        return self.text

    @property
    def host_port(self) -> tuple[str, int]:
        """
        Host and port of the first TCP listener.
        """
        for address in self.addresses:
            kind, _, rest = address.partition(":")
            if kind.startswith("tcp"):
                host, _, port = rest.rpartition(":")
                return host, int(port)
        raise DaemonError("no TCP listener")

    @property
    def base_url(self) -> str:
        host, port = self.host_port
        return f"http://{host}:{port}"
