# -*- test-case-name: tests.unit.test_worker -*-
"""
One worker process of C{twistd llmedge --workers N}: serve on listening
sockets the supervisor bound and handed down.

The supervisor (L{llmedge.supervisor}) binds every listener, then starts
C{python -m llmedge.worker} with the sockets as inherited file descriptors
and L{WorkerSetup} in the environment. Each worker reads the same
configuration, builds the same L{llmedge.service.EdgeService} and adopts the
sockets with C{reactor.adoptStreamPort} (TLS is layered on in the worker, so
each worker does its own handshakes and reloads its own certificates on
SIGHUP). The kernel gives each new connection to one worker.

A worker writes its JSON log lines to the standard output it shares with
the supervisor, or appends them to twistd's C{--logfile}. Its standard input is a pipe
the supervisor never writes to: when it closes, the supervisor is gone and
the worker stops, so no orphan keeps serving after a C{kill -9}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from dataclasses import asdict, dataclass

from twisted.internet.defer import succeed
from twisted.internet.interfaces import IReadDescriptor, IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

#: The environment variable carrying a worker's L{WorkerSetup}.
SETUP_VARIABLE = "LLMEDGE_WORKER"

FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


@dataclass(frozen=True)
class Inherited:
    """
    A listening socket the worker inherited: its descriptor in the worker,
    its address family (C{INET}, C{INET6}, C{UNIX}) and the endpoint string
    it was bound from.
    """

    fd: int
    family: str
    description: str


@dataclass(frozen=True)
class WorkerSetup:
    """
    What the supervisor tells a worker: which worker it is, how to read the
    configuration as the supervisor did, its sockets and the directory of
    state shared by all workers (rate limits, metrics).
    """

    index: int
    config_path: str | None
    config_origin: str
    listen: tuple[str, ...]
    sockets: tuple[Inherited, ...]
    state_dir: str
    log_path: str | None = None

    @property
    def limits_path(self) -> str:
        return os.path.join(self.state_dir, "limits")

    @property
    def inflight_path(self) -> str:
        return os.path.join(self.state_dir, "inflight")

    @property
    def metrics_dir(self) -> str:
        return os.path.join(self.state_dir, "metrics")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> WorkerSetup:
        raw = json.loads(text)
        raw["listen"] = tuple(raw["listen"])
        raw["sockets"] = tuple(Inherited(**s) for s in raw["sockets"])
        return cls(**raw)

    def endpoint(self, reactor, index: int, tls=None) -> IStreamServerEndpoint:
        """
        The endpoint of listener C{index}: the inherited socket, with TLS
        from C{tls} (an C{IOpenSSLServerConnectionCreator}) when given.
        """
        inherited = self.sockets[index]
        return AdoptedEndpoint(reactor, inherited.fd, FAMILIES[inherited.family], tls)


@implementer(IStreamServerEndpoint)
class AdoptedEndpoint:
    """
    A listening socket bound by another process, served here
    (C{IReactorSocket.adoptStreamPort}).
    """

    def __init__(self, reactor, fd: int, family: int, tls=None) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family
        self._tls = tls

    def listen(self, factory):
        if self._tls is not None:
            # As reactor.listenSSL does: TLS as a protocol over plain TCP.
            factory = TLSMemoryBIOFactory(self._tls, False, factory)
        port = self._reactor.adoptStreamPort(self._fd, self._family, factory)
        # adoptStreamPort duplicated the descriptor: close ours.
        os.close(self._fd)
        return succeed(port)


@implementer(IReadDescriptor)
class Lifeline:
    """
    Standard input, a pipe from the supervisor: end of file means the
    supervisor died, and C{lost} is called.
    """

    def __init__(self, fd: int, lost) -> None:
        self._fd = fd
        self._lost = lost
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self._fd

    def doRead(self):
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return None
        if not data:
            from twisted.internet.main import CONNECTION_DONE

            return CONNECTION_DONE
        return None

    def connectionLost(self, reason) -> None:
        self._lost()

    def logPrefix(self) -> str:
        return "llmedge-lifeline"


def main(environ=os.environ) -> None:
    """
    Run one worker until SIGTERM, SIGINT or the supervisor's death.
    """
    # A SIGHUP passed on while this worker still starts must not end it
    # (the default action): the service installs the real handler.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup = WorkerSetup.from_env(environ[SETUP_VARIABLE])
    environ = {k: v for k, v in environ.items() if k != SETUP_VARIABLE}

    # Every metric value goes to a file the supervisor's other workers can
    # read; prometheus_client picks its value class when a metric is made.
    from prometheus_client import values

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = setup.metrics_dir
    values.ValueClass = values.MultiProcessValue()

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    from llmedge.config import ConfigError, load
    from llmedge.observe.logging import JSONObserver, filtered
    from llmedge.service import EdgeService

    try:
        config = load(environ, setup.config_path, setup.listen, setup.config_origin)
        service = EdgeService(config, reactor, worker=setup)
        service.config_source = (environ, setup.config_path, setup.listen, setup.config_origin)
    except ConfigError as e:
        raise SystemExit(f"llmedge worker {setup.index}: {e}") from None
    out = sys.stdout
    if setup.log_path:
        # O_APPEND: each line is one write at the end of the file, never
        # interleaved with another process's.
        out = open(setup.log_path, "a", encoding="utf-8")
    globalLogBeginner.beginLoggingTo(
        [filtered(JSONObserver(out, {"worker": setup.index}), config["log.level"])],
        redirectStandardIO=False,
    )
    service.privilegedStartService()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    stop = stop_once(reactor)
    reactor.addReader(Lifeline(0, stop))
    reactor.callWhenRunning(_handle_stop_signals, reactor, stop)
    reactor.run()


def stop_once(reactor):
    """
    A callable stopping C{reactor} the first time only: a second SIGTERM (a
    service manager signalling the whole process group, then the
    supervisor passing its own on) must not stop a stopping reactor, which
    Twisted reports as a critical error.
    """
    stopping = []

    def stop(*_) -> None:
        if not stopping and reactor.running:
            stopping.append(True)
            reactor.stop()

    return stop


def _handle_stop_signals(reactor, stop) -> None:
    """
    SIGTERM and SIGINT stop the worker once, however often they come
    (replacing Twisted's handlers, which stop the reactor each time).
    """
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: reactor.callFromThread(stop))


if __name__ == "__main__":
    main()
