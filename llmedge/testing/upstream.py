# -*- test-case-name: tests.unit.test_fake_upstream,tests.unit.test_fake_upstream_dialects -*-
"""
A fake LLM provider for tests: a real Twisted Web server speaking the OpenAI
API (chat completions, the Responses API, completions, embeddings, models)
and Anthropic's Messages API (with C{count_tokens}), with deterministic
answers and misbehaviour on request.

Embed it with L{build_site}, or run it as a process::

    python -m llmedge.testing.upstream --listen tcp:0:interface=127.0.0.1

which prints one line, C{fake upstream listening on tcp:127.0.0.1:PORT},
and serves until SIGTERM (L{llmedge.testing.FakeUpstream} does all that).

Answers are C{"chunk0 chunk1 ... chunk4"}, 7 prompt tokens and one
completion token per word; the behaviour is chosen by options in the model
name, C{fake+chunks=3+interval=0.1} (L{llmedge.testing.upstream_options}),
and a few words in the last user message ask for a tool call or a
reasoning trace (L{llmedge.testing.upstream_intent}). Every API response
carries OpenAI's C{x-ratelimit-limit-requests}/C{-remaining-requests}
headers and echoes an incoming C{x-request-id}, so a proxy's header
relaying can be checked.

The fake checks no keys: it records what it saw and tests assert on that.
C{GET /_fake/log} is the record, one entry per request: the model string
as received (so a test counts the requests each deployment got), the body,
and the credential, C{anthropic-version}, C{anthropic-beta}, trace and
request id headers, so a test checks what a proxy relayed.
C{POST /_fake/reset} clears it, and C{GET /_fake/wait?n=N
&field=finished_at|disconnected_at&timeout=S} answers when request N has
ended that way (408 if it has not within S seconds), so a test can wait for
the upstream side of a cancellation without sleeping.

C{POST /_fake/behave} with C{{"name": NAME, "options": "slow-headers=0.3"}}
changes how models with C{name=NAME} answer from then on (an empty string
clears), for tests of a proxy whose upstream changes while it runs; a bad
name or option is a 400 naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver,
)
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from llmedge.testing.upstream_anthropic import CountTokensWire, MessagesWire
from llmedge.testing.upstream_answer import Endpoint
from llmedge.testing.upstream_chat import ChatWire
from llmedge.testing.upstream_openai import CompletionsWire, EmbeddingsWire, Models, NotFound
from llmedge.testing.upstream_options import (
    OPTIONS, BadOption, Behaviour, Behaviours, parse_model,
)
from llmedge.testing.upstream_responses import ResponsesWire

__all__ = ["OPTIONS", "BadOption", "Behaviour", "Behaviours", "FakeLog", "build_site", "main",
           "parse_model"]

DEFAULT_LISTEN = "tcp:0:interface=127.0.0.1"
RATE_LIMIT_HEADERS = ((b"x-ratelimit-limit-requests", b"5000"),
                      (b"x-ratelimit-remaining-requests", b"4999"))
_ENDED = ("finished_at", "disconnected_at")


class FakeRequest(Request):
    """
    A request with its log entry, so endpoints can count what they send.
    """

    entry: dict[str, Any] | None = None


def _header(request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _json_body(request) -> Any:
    request.content.seek(0)
    try:
        return json.loads(request.content.read())
    except ValueError:
        return None


class FakeLog:
    """
    What the fake saw, in order: one entry per API request, updated as the
    response goes out, ends, or is abandoned by the client.

    Entry numbers keep counting across L{reset}, so ids the fake made
    (C{chatcmpl-fake-N}) never repeat within one fake.
    """

    def __init__(self, clock) -> None:
        self._clock = clock
        self.entries: list[dict[str, Any]] = []
        self._count = 0
        self._waiters: list[tuple[int, str, Deferred[dict[str, Any]]]] = []

    def record(self, request) -> dict[str, Any]:
        self._count += 1
        body = _json_body(request)
        model = body.get("model") if isinstance(body, dict) else None
        entry = {
            "n": self._count,
            "method": request.method.decode("latin-1"),
            "path": request.path.decode("utf-8", "replace"),
            "model": model if isinstance(model, str) else None,
            "authorization": _header(request, b"authorization"),
            "x_api_key": _header(request, b"x-api-key"),
            "anthropic_version": _header(request, b"anthropic-version"),
            "anthropic_beta": _header(request, b"anthropic-beta"),
            "traceparent": _header(request, b"traceparent"),
            "x_request_id": _header(request, b"x-request-id"),
            "body": body,
            "received_at": self._clock.seconds(),
            "finished_at": None,
            "disconnected_at": None,
            "chunks_sent": 0,
        }
        self.entries.append(entry)

        def ended(result: object, field: str) -> None:
            entry[field] = self._clock.seconds()
            self._wake(entry)

        request.notifyFinish().addCallbacks(
            ended, ended, callbackArgs=("finished_at",), errbackArgs=("disconnected_at",)
        )
        return entry

    def reset(self) -> int:
        cleared, self.entries = len(self.entries), []
        return cleared

    def ended(self, n: int, field: str) -> Deferred[dict[str, Any]]:
        """
        Fire with entry C{n} once its C{field} (C{finished_at} or
        C{disconnected_at}) is set.
        """
        for entry in self.entries:
            if entry["n"] == n and entry[field] is not None:
                return succeed(entry)
        waiter: Deferred[dict[str, Any]] = Deferred(
            lambda d: self._waiters.remove((n, field, d))
        )
        self._waiters.append((n, field, waiter))
        return waiter

    def _wake(self, entry: dict[str, Any]) -> None:
        for waiter in list(self._waiters):
            n, field, d = waiter
            if n == entry["n"] and entry[field] is not None:
                self._waiters.remove(waiter)
                d.callback(entry)


class Control(Resource):
    """
    C{/_fake/log}, C{/_fake/reset}, C{/_fake/wait} and C{/_fake/behave}:
    the test's view of the fake and its hand on it, unauthenticated and
    never logged.
    """

    isLeaf = True

    def __init__(self, clock, log: FakeLog, behaviours: Behaviours) -> None:
        super().__init__()
        self._clock = clock
        self._log = log
        self._behaviours = behaviours

    def render(self, request) -> bytes | int:
        request.setHeader(b"Content-Type", b"application/json")
        action = (request.method, request.path)
        if action == (b"GET", b"/_fake/log"):
            return json.dumps(self._log.entries).encode()
        if action == (b"POST", b"/_fake/reset"):
            self._behaviours.forget_requests()
            return json.dumps({"cleared": self._log.reset()}).encode()
        if action == (b"GET", b"/_fake/wait"):
            return self._wait(request)
        if action == (b"POST", b"/_fake/behave"):
            return self._behave(request)
        request.setResponseCode(404)
        return b'{"error": "no such control endpoint"}'

    def _behave(self, request) -> bytes:
        body = _json_body(request)
        if not (isinstance(body, dict) and set(body) == {"name", "options"}
                and isinstance(body["name"], str) and isinstance(body["options"], str)):
            request.setResponseCode(400)
            return json.dumps({"error": "behave needs {name: NAME, options: OPTIONS}, "
                                        "both strings"}).encode()
        try:
            self._behaviours.behave(body["name"], body["options"])
        except BadOption as e:
            request.setResponseCode(400)
            return json.dumps({"error": str(e)}).encode()
        return json.dumps(body).encode()

    def _wait(self, request) -> bytes | int:
        try:
            n = int(request.args[b"n"][0])
            field = request.args[b"field"][0].decode()
            timeout = float(request.args.get(b"timeout", [b"10"])[0])
            if field not in _ENDED:
                raise ValueError(field)
        except (KeyError, ValueError, UnicodeDecodeError):
            request.setResponseCode(400)
            return b'{"error": "wait needs n, field (finished_at|disconnected_at), timeout"}'
        waiting = self._log.ended(n, field).addTimeout(timeout, self._clock)
        request.notifyFinish().addErrback(lambda _: waiting.cancel())

        def answer(entry: dict[str, Any]) -> None:
            request.write(json.dumps(entry).encode())
            request.finish()

        def timed_out(failure) -> None:
            if failure.check(CancelledError):  # the test went away first
                return
            request.setResponseCode(408)
            request.write(json.dumps({"error": f"request {n} has no {field}"}).encode())
            request.finish()

        waiting.addCallbacks(answer, timed_out)
        return NOT_DONE_YET


class Root(Resource):
    """
    Records every request outside C{/_fake} before routing it by its whole
    path, and gives every API response the headers a provider sends.
    """

    def __init__(self, clock, log: FakeLog, behaviours: Behaviours) -> None:
        super().__init__()
        self._log = log
        self._control = Control(clock, log, behaviours)
        self._routes = {
            b"/v1/chat/completions": Endpoint(clock, ChatWire(), behaviours),
            b"/v1/completions": Endpoint(clock, CompletionsWire(), behaviours),
            b"/v1/embeddings": Endpoint(clock, EmbeddingsWire(), behaviours),
            b"/v1/messages": Endpoint(clock, MessagesWire(), behaviours),
            b"/v1/messages/count_tokens": Endpoint(clock, CountTokensWire(), behaviours),
            b"/v1/responses": Endpoint(clock, ResponsesWire(), behaviours),
        }
        self._models = Models()
        self._not_found = NotFound()

    def getChildWithDefault(self, name: bytes, request) -> Resource:
        if name == b"_fake":
            return self._control
        request.entry = self._log.record(request)
        for header, value in RATE_LIMIT_HEADERS:
            request.setHeader(header, value)
        request_id = request.getHeader(b"x-request-id")
        if request_id is not None:
            request.setHeader(b"x-request-id", request_id)
        path = request.path
        if path == b"/v1/models" or path.startswith(b"/v1/models/"):
            return self._models
        return self._routes.get(path, self._not_found)


def build_site(clock) -> Site:
    """
    The fake upstream as a L{Site}, every delay and timeout on C{clock}
    (the reactor, or a L{twisted.internet.task.Clock} in tests).

    The site's L{FakeLog} is its C{fake_log} attribute, for tests that
    embed it (C{log} is taken: it is the site's access log method), and
    what was set at run time its C{fake_behaviours} (L{Behaviours}).
    """
    log = FakeLog(clock)
    behaviours = Behaviours()
    site = Site(Root(clock, log, behaviours), requestFactory=FakeRequest, reactor=clock)
    site.fake_log = log
    site.fake_behaviours = behaviours
    site.noisy = False
    return site


def _log_problems_to_stderr() -> None:
    """
    Warnings and errors to stderr, where a test's captured output shows them;
    the per-request access log stays quiet.
    """
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


async def _serve(reactor, listen: str) -> None:
    # react() calls this before the reactor runs; announcing only once it
    # runs means its SIGTERM handler is in place when anyone reads the line.
    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)
    await running
    port = await serverFromString(reactor, listen).listen(build_site(reactor))
    address = port.getHost()
    where = f"{address.host}:{address.port}" if hasattr(address, "port") else address.name
    kind = address.type.lower() if hasattr(address, "port") else "unix"
    print(f"fake upstream listening on {kind}:{where}", flush=True)
    await Deferred()  # until SIGTERM stops the reactor


def main(argv: list[str] | None = None) -> None:
    """
    Serve the fake upstream until SIGTERM.
    """
    parser = argparse.ArgumentParser(prog="python -m llmedge.testing.upstream")
    parser.add_argument("--listen", default=DEFAULT_LISTEN,
                        help=f"a Twisted server endpoint string (default {DEFAULT_LISTEN})")
    options = parser.parse_args(argv)
    _log_problems_to_stderr()
    react(_serve, (options.listen,))


if __name__ == "__main__":
    main(sys.argv[1:])
