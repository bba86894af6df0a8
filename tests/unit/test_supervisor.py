# -*- test-case-name: tests.unit.test_supervisor -*-
"""
Tests for L{llmedge.supervisor.Supervisor}, with worker processes recorded
by a memory reactor instead of started, and time driven by its clock.
(tests/integration/test_workers.py runs the real thing.)
"""

import os
import signal

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from llmedge.config import load
from llmedge.supervisor import FIRST_DELAY, STABLE_AFTER, STOP_MARGIN, Supervisor, family_of
from llmedge.worker import SETUP_VARIABLE, WorkerSetup


class ProcessReactor(MemoryReactorClock):
    """
    A memory reactor that records spawned processes.
    """

    def __init__(self):
        super().__init__()
        self.spawned = []
        self._pid = 1000

    def spawnProcess(self, protocol, executable, args, env=None, path=None,
                     uid=None, gid=None, usePTY=False, childFDs=None):
        self._pid += 1
        transport = FakeProcess(self._pid)
        self.spawned.append((protocol, executable, args, env, childFDs))
        protocol.makeConnection(transport)
        return transport


class FakeProcess:
    def __init__(self, pid):
        self.pid = pid
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


class FakePort:
    def __init__(self, fd, address):
        self.fd = fd
        self.address = address

    def fileno(self):
        return self.fd

    def getHost(self):
        return self.address

    def stopListening(self):
        self.stopped = True


class FakeListener:
    def __init__(self, description, port):
        self.endpoint = None
        self.factory = None
        self.description = description
        self.origin = "--listen"
        self.port = port


class FakeEdge:
    def __init__(self, config, listeners):
        self.config = config
        self.keys = None
        self.listeners = listeners


@pytest.fixture
def reactor():
    return ProcessReactor()


@pytest.fixture
def supervisor(reactor, tmp_path):
    config = load({"SHUTDOWN_GRACE_SECONDS": "20", "AUTH_ENABLED": "false"},
                  listen=["tcp:8080", "unix:/tmp/x.sock"])
    ports = [FakePort(7, IPv4Address("TCP", "127.0.0.1", 8080)),
             FakePort(9, UNIXAddress("/tmp/x.sock"))]
    edge = FakeEdge(config, [FakeListener(d, p) for d, p in zip(config.listen, ports)])
    s = Supervisor(edge, reactor, 2, "/etc/llmedge.toml", "--config",
                   environ={"RUNTIME_DIRECTORY": str(tmp_path), "API_KEYS": "x"},
                   executable="/venv/bin/python3")
    for held, port in zip(s.listeners, ports):
        held.port = port  # as if bound
    # Not a real privileged start: ports are fake; only start the workers.
    s.running = True
    s.state_dir = s._make_state()
    return s


def started(supervisor, reactor):
    for index in range(supervisor.workers):
        supervisor.spawn(index)
    return [w for w in supervisor.running_workers.values()]


def test_families():
    assert family_of(IPv4Address("TCP", "1.2.3.4", 1)) == "INET"
    assert family_of(IPv6Address("TCP", "::1", 1)) == "INET6"
    assert family_of(UNIXAddress(b"/x")) == "UNIX"
    with pytest.raises(ValueError):
        family_of(object())


def test_workers_inherit_the_sockets(supervisor, reactor):
    """
    Each worker is C{python -m llmedge.worker} with the listening sockets
    as descriptors 3, 4, … and a setup naming them, the configuration file
    and the shared state.
    """
    started(supervisor, reactor)
    assert len(reactor.spawned) == 2
    protocol, executable, args, env, fds = reactor.spawned[1]
    assert executable == "/venv/bin/python3"
    assert args == ["/venv/bin/python3", "-m", "llmedge.worker"]
    assert fds == {0: "w", 1: 1, 2: "r", 3: 7, 4: 9}
    setup = WorkerSetup.from_env(env[SETUP_VARIABLE])
    assert setup.index == 1
    assert setup.config_path == "/etc/llmedge.toml"
    assert setup.listen == ("tcp:8080", "unix:/tmp/x.sock")
    assert [(s.fd, s.family) for s in setup.sockets] == [(3, "INET"), (4, "UNIX")]
    assert env["API_KEYS"] == "x"  # the environment is passed on
    assert env["PROMETHEUS_MULTIPROC_DIR"] == setup.metrics_dir
    assert os.path.isdir(setup.metrics_dir)
    assert os.path.getsize(setup.limits_path) > 0
    # under systemd's RuntimeDirectory when there is one
    assert os.path.dirname(setup.state_dir) == supervisor._environ["RUNTIME_DIRECTORY"]


def die(worker, code=1, sig=None):
    if code == 0 and sig is None:
        worker.processEnded(Failure(ProcessDone(0)))
    else:
        worker.processEnded(Failure(ProcessTerminated(code, sig)))


def test_dead_worker_restarted_with_growing_delay(supervisor, reactor):
    workers = started(supervisor, reactor)
    with capturedLogs() as events:
        die(workers[0], sig=signal.SIGKILL)
    assert events[-1]["status"] == "was killed by signal 9"
    assert events[-1]["delay"] == FIRST_DELAY
    assert len(reactor.spawned) == 2
    reactor.advance(FIRST_DELAY)
    assert len(reactor.spawned) == 3
    again = supervisor.running_workers[0]
    assert again is not workers[0]
    # dying young again: twice the delay
    die(again)
    reactor.advance(FIRST_DELAY)
    assert len(reactor.spawned) == 3
    reactor.advance(FIRST_DELAY)
    assert len(reactor.spawned) == 4
    # a worker that lived long enough is restarted after the first delay
    reactor.advance(STABLE_AFTER)
    die(supervisor.running_workers[0])
    reactor.advance(FIRST_DELAY)
    assert len(reactor.spawned) == 5


def test_stop_terminates_waits_and_kills(supervisor, reactor):
    workers = started(supervisor, reactor)
    state = supervisor.state_dir
    ports = [held.port for held in supervisor.listeners]
    stopped = supervisor.stopService()
    # our copies of the sockets closed before the workers are told
    assert all(port.stopped for port in ports)
    assert [w.transport.signals for w in workers] == [["TERM"], ["TERM"]]
    die(workers[0], 0)
    assert not stopped.called
    reactor.advance(20 + STOP_MARGIN)
    assert workers[1].transport.signals == ["TERM", "KILL"]
    reactor._exitSignal = 15
    die(workers[1], sig=signal.SIGKILL)
    assert stopped.called
    assert reactor._exitSignal == 15  # a worker had to be killed: not clean
    assert not os.path.exists(state)
    # nothing is restarted once stopping
    reactor.advance(60)
    assert len(reactor.spawned) == 2


def test_clean_stop_exits_zero(supervisor, reactor):
    workers = started(supervisor, reactor)
    reactor._exitSignal = 15
    stopped = supervisor.stopService()
    for worker in workers:
        die(worker, 0)
    assert stopped.called
    assert reactor._exitSignal is None


def test_sighup_passed_on(supervisor, reactor):
    workers = started(supervisor, reactor)
    supervisor.signal_workers("HUP")
    assert [w.transport.signals for w in workers] == [["HUP"], ["HUP"]]


def test_worker_stderr_logged_as_errors(supervisor, reactor):
    """
    What a worker prints on standard error (its log lines go straight to
    the log) becomes error events naming it, also when lines arrive in
    pieces or end without a newline.
    """
    (worker, _) = started(supervisor, reactor)
    with capturedLogs() as events:
        worker.errReceived(b"Traceback (most recent")
        worker.errReceived(b" call last):\n  boom")
        worker.processEnded(Failure(ProcessDone(0)))
    errors = [(e["index"], e["output"]) for e in events if "output" in e]
    assert errors == [(0, "Traceback (most recent call last):"), (0, "  boom")]


def test_workers_write_the_log_themselves(supervisor, reactor):
    """
    Workers inherit the supervisor's standard output, and are told the
    path of twistd's --logfile when there is one.
    """
    started(supervisor, reactor)
    _, _, _, env, fds = reactor.spawned[0]
    assert fds[1] == 1
    assert WorkerSetup.from_env(env[SETUP_VARIABLE]).log_path is None
    supervisor._log_path = "/var/log/llmedge.log"
    supervisor.spawn(0)
    _, _, _, env, _ = reactor.spawned[-1]
    assert WorkerSetup.from_env(env[SETUP_VARIABLE]).log_path == "/var/log/llmedge.log"
