# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
A hostile fake upstream: an LLM provider that can send anything at all,
for tests of how llmedge survives its back door (endless bodies, heads
that never end, lying lengths, odd framing, odd but valid event streams).

It is a bare L{Protocol}, not twisted.web, so nothing stands between a
test and the bytes on the wire. Each request is answered by the first of:

  1. a script registered for its C{x-request-id} (C{POST
     /_hostile/script} with C{{"id": ..., "pieces": [base64...],
     "interval": S, "then": "close"|"keep"|"hang"|"abort"}}), used once;
  2. a script in its JSON body's C{"hostile"} field (same shape, no id):
     llmedge's openai-kind provider forwards unknown fields as they are;
  3. a named scenario in its body's C{model}, C{hostile+NAME+key=value}
     (L{llmedge.testing.hostile_scenarios} lists them); an unknown name or
     option gets a well-formed 400, so a typo fails loudly;
  4. a well-formed answer (L{llmedge.testing.hostile_answer}), so a test
     can check that the next request is served.

Well-formed answers keep the connection open for the next request; a
script's C{then} decides, and endless answers end only when the peer goes.

C{GET /_hostile/log} lists what happened per request
(L{llmedge.testing.hostile_log.HostileLog}), C{POST /_hostile/reset}
clears it (and any unused scripts), and C{GET
/_hostile/wait?n=N&timeout=S} answers once request N's connection has
closed (408 after S seconds), so tests wait on events, never on sleeps.

Run it as a process::

    python -m llmedge.testing.hostile --listen tcp:0:interface=127.0.0.1

which prints C{hostile upstream listening on tcp:HOST:PORT} and serves
until SIGTERM (L{llmedge.testing.HostileUpstream} does all that).
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver,
)

from llmedge.testing.hostile_answer import json_response, normal_answer
from llmedge.testing.hostile_log import MAX_ENTRIES, HostileLog, Scripts, control
from llmedge.testing.hostile_request import BadRequest, Request, RequestReader
from llmedge.testing.hostile_scenarios import (
    BadScenario, Drip, Endless, Hang, Script, parse_scenario, parse_script,
)
from llmedge.testing.hostile_writers import EndlessWriter, Flushed, PiecesWriter
from llmedge.testing.hostile_wire import dumps, error, response

__all__ = ["HostileFactory", "HostileProtocol", "main"]

DEFAULT_LISTEN = "tcp:0:interface=127.0.0.1"


class HostileProtocol(Protocol):
    """
    One connection: reads requests one at a time, answers each as the
    module docstring says, and reads the next only once an answer ended
    with the connection kept.
    """

    def __init__(self, factory: HostileFactory) -> None:
        self._factory = factory
        self._clock = factory.clock
        self._reader: RequestReader | None = RequestReader()
        self._entries: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._entry: dict[str, Any] | None = None
        self._busy = self._serving = self._closing = False
        self._flushed = Flushed()
        self._producer: object | None = None
        self._stop = None

    def connectionMade(self) -> None:
        self._register(self._flushed, False)

    def _register(self, producer, streaming: bool) -> None:
        if self._producer is not None:
            self.transport.unregisterProducer()
        self._producer = producer
        if producer is not None:
            self.transport.registerProducer(producer, streaming)

    def dataReceived(self, data: bytes) -> None:
        if self._reader is None or self._closing:  # hung: read and dropped
            return
        try:
            self._reader.feed(data)
        except BadRequest as e:
            self._refuse(e)
            return
        self._serve()

    def _serve(self) -> None:
        if self._serving:
            return
        self._serving = True
        try:
            while not self._busy and self._reader is not None and not self._closing:
                try:
                    request = self._reader.next()
                except BadRequest as e:
                    self._refuse(e)
                    return
                if request is None:
                    if self._reader.wants_continue:
                        self._reader.wants_continue = False
                        self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    return
                self._busy = True
                if request.path.startswith("/_hostile/"):
                    self._control(request)
                else:
                    self._answer_api(request)
        finally:
            self._serving = False

    def _send(self, data: bytes) -> None:
        if data:
            self.transport.write(data)
            self._flushed.wrote()
            if self._entry is not None:
                self._entry["bytes_sent"] += len(data)

    def _finished(self, keep: bool) -> None:
        self._busy, self._entry, self._stop = False, None, None
        if keep:
            self._serve()
        else:
            self._close()

    def _answer(self, data: bytes, keep: bool) -> None:
        self._send(data)
        self._finished(keep)

    def _refuse(self, problem: BadRequest) -> None:
        if not self._busy:  # never in the middle of an answer
            self._send(response(problem.status, [(b"Content-Type", b"application/json")],
                                dumps(error(str(problem))), "close"))
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()
        self._register(None, False)  # a registered producer would hold the close
        self.transport.loseConnection()

    def _abort(self) -> None:
        self._closing = True
        self.transport.abortConnection()

    def _hang(self) -> None:
        self._reader = None

    # -- API requests -------------------------------------------------------------

    def _record(self, request: Request, body: Any, scenario: str) -> None:
        model = body.get("model") if isinstance(body, dict) else None
        self._entry = self._factory.log.record(
            request.method, request.path, model, request.header("x-request-id"), scenario)
        self._entries.append(self._entry)

    def _answer_api(self, request: Request) -> None:
        body = request.json()
        script = self._factory.scripts.take(request.header("x-request-id"))
        if script is not None:
            self._record(request, body, "script")
            return self._play(script)
        fields = body if isinstance(body, dict) else {}
        scenario = None
        try:
            if "hostile" in fields:
                script = parse_script(fields["hostile"])
            else:
                scenario = parse_scenario(fields.get("model"))
        except BadScenario as e:
            self._record(request, body, "refused")
            return self._answer(json_response(400, error(str(e), code="bad_scenario")),
                                request.keep_alive)
        if script is not None:
            self._record(request, body, "body")
            return self._play(script)
        if scenario is None:
            self._record(request, body, "normal")
            return self._answer(normal_answer(request.method, request.path, body),
                                request.keep_alive)
        self._record(request, body, fields["model"].split("+")[1])
        if isinstance(scenario, Endless):
            self._endless(scenario)
        elif isinstance(scenario, Drip):
            answer = normal_answer(request.method, request.path, {**fields, "stream": False})
            pieces = tuple(answer[i:i + 1] for i in range(len(answer)))
            self._play(Script(pieces, scenario.interval, "keep" if request.keep_alive else "close"))
        else:
            assert isinstance(scenario, Hang)
            self._hang()

    def _play(self, script: Script) -> None:
        def done() -> None:
            if script.then == "keep":
                self._finished(True)
            elif script.then == "close":
                self._close()
            elif script.then == "hang":
                self._hang()
            else:
                self._flushed.then(self._abort)

        writer = PiecesWriter(self._clock, script.pieces, script.interval, self._send, done)
        self._stop = writer.stop
        writer.start()

    def _endless(self, endless: Endless) -> None:
        entry = self._entry
        assert entry is not None

        def paused() -> None:
            entry["paused"] += 1

        writer = EndlessWriter(self._clock, endless, self._send, paused)
        self._register(writer, True)
        self._stop = writer.stopProducing
        writer.start()

    def _control(self, request: Request) -> None:
        answer = control(self._factory.log, self._factory.scripts, self._clock, request)
        if isinstance(answer, bytes):
            return self._answer(answer, request.keep_alive)
        self._stop = answer.cancel
        answer.addCallback(self._answer, request.keep_alive)
        answer.addErrback(lambda failure: failure.trap(CancelledError))  # the test went away

    def connectionLost(self, reason=None) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()
        self._reader = None
        self._factory.log.closed(self._entries, "fake" if self._closing else "peer")


class HostileFactory(Factory):
    """
    Makes L{HostileProtocol}s sharing one log and one script store.

    @ivar log: the L{HostileLog}.
    @ivar scripts: the registered L{Scripts}.
    """

    noisy = False

    def __init__(self, clock) -> None:
        self.clock = clock
        self.log = HostileLog(clock)
        self.scripts = Scripts()

    def buildProtocol(self, addr) -> HostileProtocol:
        return HostileProtocol(self)


async def _serve(reactor, listen: str) -> None:
    # Announce only once the reactor runs, so its SIGTERM handler is in
    # place when anyone reads the line (as llmedge.testing.upstream does).
    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)
    await running
    port = await serverFromString(reactor, listen).listen(HostileFactory(reactor))
    address = port.getHost()
    print(f"hostile upstream listening on tcp:{address.host}:{address.port}", flush=True)
    await Deferred()  # until SIGTERM stops the reactor


def main(argv: list[str] | None = None) -> None:
    """
    Serve the hostile fake upstream until SIGTERM.
    """
    parser = argparse.ArgumentParser(prog="python -m llmedge.testing.hostile")
    parser.add_argument("--listen", default=DEFAULT_LISTEN,
                        help=f"a Twisted TCP server endpoint string (default {DEFAULT_LISTEN})")
    options = parser.parse_args(argv)
    # Warnings and errors to stderr, where a test's captured output shows them.
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    react(_serve, (options.listen,))


if __name__ == "__main__":
    main(sys.argv[1:])
