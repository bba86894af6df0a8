# -*- test-case-name: tests.unit.test_probe -*-
"""
Tests for L{llmedge.probe.ProviderProbe}: rounds driven by a clock,
connections answered by the test.
"""

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from llmedge.config import ProviderConfig
from llmedge.probe import ProviderProbe, address_of

UP = ProviderConfig("up", "openai", {"base_url": "https://api.example.com/v1"})
OTHER = ProviderConfig("other", "anthropic", {"base_url": "http://10.0.0.9:8081"})
MOCK = ProviderConfig("mock", "mock")


class Connections:
    def __init__(self):
        self.pending = []

    def __call__(self, host, port, timeout):
        d = Deferred()
        self.pending.append((host, port, timeout, d))
        return d

    def answer(self, up=True):
        for host, port, timeout, d in self.pending:
            if up:
                d.callback(None)
            else:
                d.errback(ConnectionRefusedError(host, port))
        self.pending = []


def probe_of(*providers, interval=10.0):
    clock, connections = Clock(), Connections()
    probe = ProviderProbe(clock, {p.name: p for p in providers}, interval, connect=connections)
    return clock, connections, probe


def test_addresses():
    assert address_of(UP) == ("api.example.com", 443)
    assert address_of(OTHER) == ("10.0.0.9", 8081)
    assert address_of(ProviderConfig("p", "openai", {"base_url": "http://h/v1"})) == ("h", 80)
    assert address_of(MOCK) is None


def test_mock_is_always_ready():
    _, connections, probe = probe_of(MOCK)
    probe.startService()
    assert probe.ready()
    assert connections.pending == []


def test_ready_until_the_first_round_says_otherwise():
    clock, connections, probe = probe_of(UP)
    probe.startService()
    assert probe.ready()
    assert [(h, p, t) for h, p, t, _ in connections.pending] == [("api.example.com", 443, 2.0)]
    with capturedLogs() as events:
        connections.answer(up=False)
    assert not probe.ready()
    assert "unreachable" in events[0]["log_format"]
    assert events[0]["provider"] == "up"
    # next round, ten seconds later: back
    clock.advance(10)
    with capturedLogs() as events:
        connections.answer(up=True)
    assert probe.ready()
    assert "reachable again" in events[0]["log_format"]
    # a state that does not change is not logged again
    clock.advance(10)
    with capturedLogs() as events:
        connections.answer(up=True)
    assert events == []
    probe.stopService()
    assert clock.getDelayedCalls() == []


def test_ready_while_any_upstream_answers():
    clock, connections, probe = probe_of(UP, OTHER)
    probe.startService()
    host, port, _, d = connections.pending.pop(0)
    d.errback(ConnectionRefusedError(host, port))
    assert probe.ready()  # the other one is not known to be down
    connections.answer(up=False)
    assert not probe.ready()


def test_a_slow_round_delays_the_next():
    clock, connections, probe = probe_of(UP, interval=1.0)
    probe.startService()
    clock.advance(5)
    assert len(connections.pending) == 1  # still waiting on the first
    connections.answer()
    clock.advance(1)
    assert len(connections.pending) == 1


def test_reload_forgets_removed_providers():
    clock, connections, probe = probe_of(UP)
    probe.startService()
    connections.answer(up=False)
    assert not probe.ready()
    probe.set_providers({"other": OTHER})
    assert probe.ready()
    assert probe.reachable == {}


def test_zero_interval_never_probes():
    clock, connections, probe = probe_of(UP, interval=0)
    probe.startService()
    assert connections.pending == []
    assert probe.ready()
