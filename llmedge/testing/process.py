# -*- test-case-name: tests.integration.test_startup -*-
"""
L{ChildProcess}: a server under test running as a child process, ready
once it prints the line that says so.

Shared by L{llmedge.testing.Daemon} and L{llmedge.testing.FakeUpstream}:
start it, read everything it prints on a thread (a full pipe would block
it), wait for its readiness line (bounded), stop it with SIGTERM as
systemd would.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping


def record_of(line: str) -> dict:
    """
    One line of llmedge's JSON log as the object it holds, or C{{}} for a
    line that is not one: a test asks a line's fields, never how its text
    is spaced.
    """
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


class DaemonError(Exception):
    """
    The process did not start; the message carries what it printed.
    """


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               what: str = "condition") -> object:
    """
    Wait for another process to reach a state: C{predicate()}'s first
    true value, asked every 10 ms for at most C{timeout} seconds.

    For tests of real processes, whose state can only be observed, never
    driven; a test about time drives a L{twisted.internet.task.Clock}.

    @raise DaemonError: C{what} did not happen in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DaemonError(f"{what}: not within {timeout}s")
        time.sleep(0.01)


def polled(clock, predicate: Callable[[], object], timeout: float = 10.0,
           interval: float = 0.01, what: str = "condition"):
    """
    L{wait_until} for a test running in the reactor: a Deferred of
    C{predicate()}'s first true value (C{predicate} may return a Deferred
    of it), asked every C{interval} seconds of C{clock} for at most
    C{timeout} seconds. For another process's state only (a Redis server
    coming back, or seeing a client leave), never for time llmedge's own
    code measures.

    @return: a Deferred failing with L{DaemonError} when C{what} did not
        happen in time.
    """
    from twisted.internet.defer import Deferred, maybeDeferred

    deadline = clock.seconds() + timeout
    done: Deferred = Deferred()

    def ask() -> None:
        maybeDeferred(predicate).addCallbacks(answered, done.errback)

    def answered(value) -> None:
        if value:
            done.callback(value)
        elif clock.seconds() >= deadline:
            done.errback(DaemonError(f"{what}: not within {timeout}s"))
        else:
            clock.callLater(interval, ask)

    ask()
    return done


class ChildProcess:
    """
    Subclasses give L{command} and L{ready}, which sees each line printed
    until it returns True.

    @ivar output: every line printed so far (stdout and stderr).
    """

    name = "child process"

    def __init__(self, env: Mapping[str, str] | None = None, start_timeout: float = 30.0) -> None:
        self.env = {**os.environ, **(env or {})}
        self.start_timeout = start_timeout
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self, line: str) -> bool:
        raise NotImplementedError

    def start(self):
        """
        Start the process and wait until it says it is ready.

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
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise DaemonError(f"{self.name}: not ready in time:\n{self.text}") from None
            if line is None:
                self.process.wait()
                raise DaemonError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.text}"
                )
            if self.ready(line.strip()):
                return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    @property
    def text(self) -> str:
        """
        Everything printed so far.
        """
        return "\n".join(self.output)

    def records(self) -> list[dict]:
        """
        Every JSON log line printed so far, as objects (L{record_of}).
        """
        return [record for record in map(record_of, self.output) if record]

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """
        The first output line (old or new) for which C{predicate} is true,
        waiting up to C{timeout} seconds for it to be printed: a response
        can reach a client before the log line about it is read here.
        """
        seen = 0

        def found():
            nonlocal seen
            for line in self.output[seen:]:
                if predicate(line):
                    return line
            seen = len(self.output)
            return None

        return wait_until(found, timeout, f"{self.name}: such a line")

    def rss(self) -> int:
        """
        The process's resident memory now, in bytes (Linux: C{VmRSS} of
        C{/proc/PID/status}), for tests that bound what a peer can make it
        hold.
        """
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        """
        The most resident memory the process has held so far, in bytes
        (C{VmHWM}): what a burst cost, even once it is given back.
        """
        return self._status("VmHWM")

    def _status(self, field: str) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise DaemonError(f"{self.name}: no {field} in /proc/{self.process.pid}/status")

    def stop(self, timeout: float = 15.0) -> int:
        """
        SIGTERM the process and wait for it to exit.

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
        if self._reader is not None:
            self._reader.join(timeout)
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
