# -*- test-case-name: tests.unit.test_worker -*-
"""
Tests for L{llmedge.worker}: the setup a supervisor hands a worker, the
adopted listening sockets, and the lifeline to the supervisor.
"""

import os
import socket

from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.main import CONNECTION_DONE
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.protocols.tls import TLSMemoryBIOFactory

from zope.interface import implementer

from llmedge.worker import AdoptedEndpoint, Inherited, Lifeline, WorkerSetup

SETUP = WorkerSetup(
    index=1, config_path=None, config_origin="LLMEDGE_CONFIG",
    listen=("tcp:8080", "unix:/run/x.sock"),
    sockets=(Inherited(3, "INET", "tcp:8080"), Inherited(4, "UNIX", "unix:/run/x.sock")),
    state_dir="/run/llmedge/llmedge-workers-x",
)


def test_setup_round_trip():
    assert WorkerSetup.from_env(SETUP.to_env()) == SETUP
    assert SETUP.limits_path == "/run/llmedge/llmedge-workers-x/limits"
    assert SETUP.metrics_dir == "/run/llmedge/llmedge-workers-x/metrics"


def listening_fd():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s.detach()


def test_adopted_endpoint_serves_the_inherited_socket():
    reactor = MemoryReactor()
    fd = listening_fd()
    factory = Factory()
    ports = []
    AdoptedEndpoint(reactor, fd, socket.AF_INET).listen(factory).addCallback(ports.append)
    assert ports
    ((adopted_fd, family, adopted_factory),) = reactor.adoptedPorts
    assert (adopted_fd, family, adopted_factory) == (fd, socket.AF_INET, factory)
    # the reactor duplicated it: this copy is closed
    try:
        os.fstat(fd)
    except OSError:
        pass
    else:
        raise AssertionError("descriptor left open")


@implementer(IOpenSSLServerConnectionCreator)
class Creator:
    def serverConnectionForTLS(self, protocol):
        raise NotImplementedError


def test_adopted_endpoint_layers_tls():
    reactor = MemoryReactor()
    factory = Factory()
    creator = Creator()
    AdoptedEndpoint(reactor, listening_fd(), socket.AF_INET6, creator).listen(factory)
    ((_, family, wrapped),) = reactor.adoptedPorts
    assert family == socket.AF_INET6
    assert isinstance(wrapped, TLSMemoryBIOFactory)
    assert wrapped.wrappedFactory is factory


def test_setup_endpoint_uses_the_family():
    reactor = MemoryReactor()
    setup = WorkerSetup(0, None, "--config", ("tcp:80",),
                        (Inherited(listening_fd(), "INET6", "tcp:80"),), "/tmp")
    setup.endpoint(reactor, 0).listen(Factory())
    assert reactor.adoptedPorts[0][1] == socket.AF_INET6


def test_lifeline_ends_at_end_of_file():
    read, write = os.pipe()
    lost = []
    line = Lifeline(read, lambda: lost.append(True))
    assert line.fileno() == read
    assert line.doRead() is None  # nothing to read yet: still alive
    os.write(write, b"x")
    assert line.doRead() is None
    os.close(write)
    assert line.doRead() is CONNECTION_DONE
    line.connectionLost(None)
    assert lost == [True]
    os.close(read)


def test_stop_once():
    from llmedge.worker import stop_once

    class Reactor:
        running = True
        stops = 0

        def stop(self):
            self.stops += 1

    reactor = Reactor()
    stop = stop_once(reactor)
    stop()
    stop(15, None)  # as a signal handler is called
    assert reactor.stops == 1
    idle = Reactor()
    idle.running = False
    stop_once(idle)()
    assert idle.stops == 0
