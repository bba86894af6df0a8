# -*- test-case-name: tests.unit.test_supervisor -*-
"""
C{twistd llmedge --workers N}: one supervisor process binding the
listeners and N worker processes serving them, to use every core.

CPython runs one thread of Python at a time, so one llmedge process is
bound to one core. The supervisor binds every listener (as root if need be,
in C{privilegedStartService}, before C{twistd --uid} drops privileges),
never accepts on them, and starts N copies of L{llmedge.worker} that inherit
the sockets: the kernel then gives each new connection to one worker. This
is the pre-fork model of Twisted's own documentation
(C{IReactorSocket.adoptStreamPort}), with the supervisor doing only what
one process must:

  - restart a worker that dies, after a delay that grows while workers keep
    dying young, so a crash loop does not spin a core;
  - pass SIGHUP on to every worker, and on SIGTERM stop them all and wait
    for them (killing any that outlive the grace period) before exiting;
  - give the workers the one log: its standard output (journald, a pipe),
    or the path of twistd's C{--logfile}, which each worker appends to
    (one C{write} per line, so lines never interleave); and log whatever a
    worker prints on standard error (a crash) as an error naming it;
  - own the directory of state the workers share: the rate-limit table
    (L{llmedge.limits.shared}) and prometheus_client's per-process metric
    files, so C{/metrics} on any worker shows the whole instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from llmedge import __version__
from llmedge.describe import describe
from llmedge.limits import inflight, shared
from llmedge.service import Listener, TopService, clean_exit
from llmedge.worker import SETUP_VARIABLE, Inherited, WorkerSetup

#: Restart delays: the first, the longest, and how long a worker must have
#: lived for its death to count as an accident rather than a crash loop.
FIRST_DELAY = 0.5
LONGEST_DELAY = 30.0
STABLE_AFTER = 10.0

#: Seconds workers get after SIGTERM beyond their own grace period (drain).
STOP_MARGIN = 5.0

#: A line of worker output longer than this is cut (a runaway write must
#: not grow the supervisor's memory).
MAX_LINE = 1 << 20


def family_of(address) -> str:
    """
    The address family name of a bound port's address, as
    L{llmedge.worker.FAMILIES} knows it.
    """
    if isinstance(address, IPv6Address):
        return "INET6"
    if isinstance(address, IPv4Address):
        return "INET"
    if isinstance(address, UNIXAddress):
        return "UNIX"
    raise ValueError(f"cannot hand {address!r} to a worker")


class HeldListener(Listener):
    """
    A listener the supervisor binds and holds for its workers, never
    accepting on it itself.
    """

    def _listening(self, port) -> None:
        super()._listening(port)
        # Bound, not served: only the workers accept.
        port.stopReading()


class WorkerProcess(ProcessProtocol):
    """
    The supervisor's end of one worker: its output, its exit.
    """

    def __init__(self, supervisor: Supervisor, index: int, started: float) -> None:
        self.supervisor = supervisor
        self.index = index
        self.started = started
        self.pid: int | None = None
        self.ended: Deferred[None] = Deferred()
        self._partial = b""

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def errReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = b""
        self._partial = rest
        for line in lines:
            if line:
                self.supervisor.worker_output(self, line)

    def processEnded(self, reason) -> None:
        if self._partial:
            self.supervisor.worker_output(self, self._partial)
            self._partial = b""
        self.supervisor.worker_ended(self, reason)
        self.ended.callback(None)


class Supervisor(TopService):
    """
    Bind the listeners and keep N workers serving them.

    @param edge: an L{llmedge.service.EdgeService} built from the
        configuration and never started: building it checked every setting
        as each worker will, and the supervisor binds its listeners'
        endpoints.
    @param log_path: twistd's C{--logfile}, which workers append to; with
        none, they write to the standard output they share with the
        supervisor.
    """

    _log = Logger()

    def __init__(
        self,
        edge,
        reactor,
        workers: int,
        config_path: str | None,
        config_origin: str,
        environ=os.environ,
        executable: str = sys.executable,
        log_path: str | None = None,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self.config = edge.config
        self._keys = edge.keys
        self.workers = workers
        self._config_path = config_path
        self._config_origin = config_origin
        self._environ = environ
        self._executable = executable
        self._log_path = log_path
        self.listeners: list[HeldListener] = []
        for listener in edge.listeners:
            held = HeldListener(listener.endpoint, listener.factory,
                                listener.description, listener.origin)
            held.setServiceParent(self)
            self.listeners.append(held)
        self.state_dir: str | None = None
        self.running_workers: dict[int, WorkerProcess] = {}
        self._delays = [FIRST_DELAY] * workers
        self._restarts: dict[int, object] = {}
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        self._log.info(
            "llmedge {version} starting with {workers} workers",
            version=__version__, workers=self.workers,
            config=describe(self.config, self._keys),
        )
        self.state_dir = self._make_state()
        if hasattr(signal, "SIGHUP") and hasattr(self._reactor, "callFromThread"):
            signal.signal(signal.SIGHUP,
                          lambda *_: self._reactor.callFromThread(self.signal_workers, "HUP"))
        for index in range(self.workers):
            self.spawn(index)
        self._reactor.callWhenRunning(self._announce)

    def _make_state(self) -> str:
        """
        The directory the workers share, made as the user they run as
        (after twistd dropped privileges): under systemd's
        C{RuntimeDirectory} when there is one.
        """
        runtime = self._environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
        state = tempfile.mkdtemp(prefix="llmedge-workers-", dir=runtime)
        os.mkdir(os.path.join(state, "metrics"), 0o700)
        shared.create(os.path.join(state, "limits"))
        inflight.create(os.path.join(state, "inflight"))
        return state

    def _announce(self) -> None:
        for listener in self.listeners:
            listener.announce()

    def setup_for(self, index: int) -> WorkerSetup:
        sockets = []
        for n, listener in enumerate(self.listeners):
            sockets.append(Inherited(
                fd=3 + n,
                family=family_of(listener.port.getHost()),
                description=listener.description,
            ))
        return WorkerSetup(
            index=index,
            config_path=self._config_path,
            config_origin=self._config_origin,
            listen=tuple(self.config.listen),
            sockets=tuple(sockets),
            state_dir=self.state_dir,
            log_path=self._log_path,
        )

    def spawn(self, index: int) -> WorkerProcess:
        """
        Start worker C{index}.
        """
        self._restarts.pop(index, None)
        setup = self.setup_for(index)
        env = dict(self._environ)
        env[SETUP_VARIABLE] = setup.to_env()
        env["PROMETHEUS_MULTIPROC_DIR"] = setup.metrics_dir
        child_fds = {0: "w", 1: 1, 2: "r"}
        for n, listener in enumerate(self.listeners):
            child_fds[3 + n] = listener.port.fileno()
        worker = WorkerProcess(self, index, self._reactor.seconds())
        self._reactor.spawnProcess(
            worker, self._executable, [self._executable, "-m", "llmedge.worker"],
            env=env, childFDs=child_fds,
        )
        self.running_workers[index] = worker
        self._log.info("Started worker {index} (pid {pid})", index=index, pid=worker.pid)
        return worker

    def worker_output(self, worker: WorkerProcess, line: bytes) -> None:
        """
        One line a worker wrote on its standard error (its log lines go
        straight to the log): a crash, logged as an error naming it.
        """
        text = line.decode("utf-8", "replace")
        self._log.error("worker {index}: {output}", index=worker.index, output=text)

    def worker_ended(self, worker: WorkerProcess, reason) -> None:
        if self.running_workers.get(worker.index) is worker:
            del self.running_workers[worker.index]
        if self.state_dir is not None and worker.pid is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(worker.pid, os.path.join(self.state_dir, "metrics"))
        if self._stopping:
            return
        status = _status(reason)
        lived = self._reactor.seconds() - worker.started
        if lived >= STABLE_AFTER:  # an accident: start over
            delay = self._delays[worker.index] = FIRST_DELAY
        else:  # dying young: each time twice as long to wait
            delay = self._delays[worker.index]
            self._delays[worker.index] = min(LONGEST_DELAY, delay * 2)
        self._log.error(
            "Worker {index} (pid {pid}) {status}; restarting it in {delay:g} s",
            index=worker.index, pid=worker.pid, status=status, delay=delay)
        self._restarts[worker.index] = self._reactor.callLater(delay, self.spawn, worker.index)

    def signal_workers(self, name: str) -> None:
        """
        Send signal C{name} (C{"HUP"}, C{"TERM"}, C{"KILL"}) to every
        running worker.
        """
        if name == "HUP":
            self._log.info("SIGHUP: passed on to {count} workers",
                           count=len(self.running_workers))
        for worker in list(self.running_workers.values()):
            try:
                worker.transport.signalProcess(name)
            except Exception:  # it ended meanwhile
                pass

    def stopService(self) -> Deferred[None]:
        """
        Close the listeners, stop every worker (SIGTERM: each drains; then
        SIGKILL after the grace period), and remove the shared state.
        """
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        # Close our copies of the listening sockets first: once the workers
        # close theirs, the kernel refuses new connections instead of
        # queueing them for nobody.
        for listener in self.listeners:
            listener.stopService()
        endings = [w.ended for w in self.running_workers.values()]
        self.signal_workers("TERM")
        grace = self.config["server.shutdown_grace_seconds"] + STOP_MARGIN
        killer = self._reactor.callLater(grace, self.signal_workers, "KILL")
        waited = DeferredList(endings) if endings else succeed(None)

        def stopped(_):
            if killer.active():
                killer.cancel()
                clean_exit(self._reactor)  # every worker ended in time
            return MultiService.stopService(self)

        def cleaned(result):
            if self.state_dir is not None:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            return result

        return waited.addCallback(stopped).addBoth(cleaned)


def _status(reason) -> str:
    value = reason.value
    if isinstance(value, ProcessDone):
        return "exited with status 0"
    if isinstance(value, ProcessTerminated):
        if value.signal is not None:
            return f"was killed by signal {value.signal}"
        return f"exited with status {value.exitCode}"
    return "ended"
