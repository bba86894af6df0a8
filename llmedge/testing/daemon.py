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

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

#: How the daemon announces each listener: "llmedge listening on tcp:HOST:PORT".
LISTENING = re.compile(r"llmedge listening on (?P<kind>\w+):(?P<address>\S+?)(?=[\"\s]|$)")

_TWISTD = "from twisted.scripts.twistd import run; run()"


class DaemonError(Exception):
    """
    The daemon did not start; the message carries what it printed.
    """


class Daemon:
    """
    A running C{twistd llmedge} child process.

    @ivar addresses: every listener's address as logged, e.g.
        C{"tcp:127.0.0.1:40123"}.
    @ivar output: every line the daemon printed so far.
    """

    def __init__(
        self,
        args: Sequence[str] = ("--listen", "tcp:0:interface=127.0.0.1"),
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        start_timeout: float = 30.0,
        listeners: int | None = None,
    ) -> None:
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.python = python
        self.start_timeout = start_timeout
        self.listeners = listeners or max(1, self.args.count("--listen"))
        self.addresses: list[str] = []
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process: subprocess.Popen[str] | None = None

    @property
    def command(self) -> list[str]:
        return [
            self.python, "-c", _TWISTD,
            "--nodaemon", "--pidfile=", "--logfile=-", "llmedge", *self.args,
        ]

    def start(self) -> Daemon:
        """
        Start the daemon and wait until every listener is up.

        @raise DaemonError: if it exits or stays silent instead.
        """
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while len(self.addresses) < self.listeners:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise DaemonError("no listener within the start timeout:\n" + self.log) from None
            if line is None:
                self.process.wait()
                raise DaemonError(
                    f"exited with {self.process.returncode} before listening:\n{self.log}"
                )
            match = LISTENING.search(line)
            if match:
                self.addresses.append(f"{match['kind']}:{match['address']}")
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_line(self, predicate, timeout: float = 10.0) -> str:
        """
        The first output line (old or new) for which C{predicate} is true,
        waiting up to C{timeout} seconds for it to be printed: a response
        can reach a client before the log line about it is read here.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.output[seen:]:
                if predicate(line):
                    return line
            seen = len(self.output)
            if time.monotonic() >= deadline:
                raise DaemonError("no such line within the timeout")
            time.sleep(0.01)

    @property
    def log(self) -> str:
        return "\n".join(self.output)

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

    def stop(self, timeout: float = 15.0) -> int:
        """
        SIGTERM the daemon and wait for it to exit.

        @return: its exit status (negative for a signal, as subprocess says).
        """
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout)
        return self.process.returncode

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
