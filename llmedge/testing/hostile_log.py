# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
The hostile fake upstream's memory: what it did per request (L{HostileLog}),
and the scripts tests registered for request ids (L{Scripts}), both
bounded like everything the fake keeps; and the test's view of them, the
C{/_hostile/...} control paths (L{control}).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, succeed

from llmedge.testing.hostile_answer import json_response
from llmedge.testing.hostile_request import Request
from llmedge.testing.hostile_scenarios import BadScenario, Script, parse_script
from llmedge.testing.hostile_wire import error

#: The most scripts kept waiting for their request; the oldest go first.
MAX_SCRIPTS = 10_000
#: The most log entries kept; the oldest go first.
MAX_ENTRIES = 100_000


class Scripts:
    """
    Scripts by request id, each used once.
    """

    def __init__(self, limit: int = MAX_SCRIPTS) -> None:
        self._limit = limit
        self._scripts: OrderedDict[str, Script] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scripts)

    def add(self, request_id: str, script: Script) -> None:
        self._scripts.pop(request_id, None)
        self._scripts[request_id] = script
        while len(self._scripts) > self._limit:
            self._scripts.popitem(last=False)

    def take(self, request_id: str | None) -> Script | None:
        """
        The script for C{request_id}, forgotten as it is handed out.
        """
        return None if request_id is None else self._scripts.pop(request_id, None)

    def clear(self) -> int:
        cleared = len(self._scripts)
        self._scripts.clear()
        return cleared


class HostileLog:
    """
    One entry per API request, in order: C{n} (counting on across
    L{reset}), C{method}, C{path}, C{model}, C{x_request_id}, C{scenario}
    (C{"script"}, C{"body"}, a scenario name, C{"normal"} or C{"refused"}
    for a script or scenario the fake could not read), C{bytes_sent},
    C{paused} (times the transport paused the writer), C{closed_at}
    (L{None} until the request's connection closed) and C{closed_by}
    (C{"peer"} or C{"fake"}).
    """

    def __init__(self, clock, limit: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self.entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self._count = 0
        self._waiters: dict[int, list[Deferred[dict[str, Any]]]] = {}

    def record(self, method: str, path: str, model: Any, request_id: str | None,
               scenario: str) -> dict[str, Any]:
        self._count += 1
        entry = {
            "n": self._count, "method": method, "path": path,
            "model": model if isinstance(model, str) else None,
            "x_request_id": request_id, "scenario": scenario,
            "bytes_sent": 0, "paused": 0, "closed_at": None, "closed_by": None,
        }
        self.entries.append(entry)
        return entry

    def closed(self, entries, by: str) -> None:
        """
        The connection that carried C{entries} has closed, C{by} the
        C{"peer"} or the C{"fake"}.
        """
        now = self._clock.seconds()
        for entry in entries:
            entry["closed_at"], entry["closed_by"] = now, by
            for waiter in self._waiters.pop(entry["n"], []):
                waiter.callback(entry)

    def reset(self) -> int:
        cleared = len(self.entries)
        self.entries.clear()
        return cleared

    def when_closed(self, n: int) -> Deferred[dict[str, Any]]:
        """
        Fire with entry C{n} once its connection has closed (at once if it
        has); request C{n} need not have arrived yet.
        """
        for entry in self.entries:
            if entry["n"] == n and entry["closed_at"] is not None:
                return succeed(entry)
        waiters = self._waiters.setdefault(n, [])

        def cancel(d: Deferred[dict[str, Any]]) -> None:
            waiters.remove(d)
            if not waiters and self._waiters.get(n) is waiters:
                del self._waiters[n]

        waiter: Deferred[dict[str, Any]] = Deferred(cancel)
        waiters.append(waiter)
        return waiter


def _store(scripts: Scripts, document: Any) -> bytes:
    try:
        request_id = document.get("id") if isinstance(document, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise BadScenario("a script needs its request's id")
        scripts.add(request_id, parse_script(document))
    except BadScenario as e:
        return json_response(400, error(str(e)))
    return json_response(200, {"stored": request_id})


def _wait(log: HostileLog, clock, request: Request) -> bytes | Deferred[bytes]:
    try:
        n = int(request.query["n"])
        timeout = float(request.query.get("timeout", "10"))
    except (KeyError, ValueError):
        return json_response(400, error("wait needs n and timeout"))

    def timed_out(failure) -> bytes:
        failure.trap(TimeoutError)
        return json_response(408, error(f"request {n} has not closed within {timeout}s"))

    waiting = log.when_closed(n).addTimeout(timeout, clock)
    return waiting.addCallbacks(lambda entry: json_response(200, entry), timed_out)


def control(log: HostileLog, scripts: Scripts, clock, request: Request) -> bytes | Deferred[bytes]:
    """
    The answer to a C{/_hostile/...} request: C{GET log}, C{POST reset},
    C{POST script}, C{GET wait?n=N&timeout=S}; a Deferred for a wait
    (cancel it if the asker goes away).
    """
    action = (request.method, request.path)
    if action == ("GET", "/_hostile/log"):
        return json_response(200, list(log.entries))
    if action == ("POST", "/_hostile/reset"):
        return json_response(200, {"cleared": log.reset(), "scripts": scripts.clear()})
    if action == ("POST", "/_hostile/script"):
        return _store(scripts, request.json())
    if action == ("GET", "/_hostile/wait"):
        return _wait(log, clock, request)
    return json_response(404, error(f"no control endpoint {request.method} {request.path}"))
