# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
Helpers for tests of llmedge and of the applications behind it, shipped
with the package as treq ships C{treq.testing}.

  - L{Daemon} starts the real C{twistd llmedge} on a free loopback port.
  - L{FakeUpstream} starts the fake LLM provider
    (L{llmedge.testing.upstream}) the same way, to stand behind it.
  - L{HostileUpstream} starts the hostile fake provider
    (L{llmedge.testing.hostile}), which sends whatever a test scripts:
    endless bodies, heads that never end, lying framing.
  - L{FakeCollector} receives the daemon's OTLP traces.

Nothing here imports the reactor: the fake upstream's server lives in
L{llmedge.testing.upstream} and is only imported by the process that runs
it (or by a test that embeds it with C{build_site}).
"""

from llmedge.testing.collector import FakeCollector
from llmedge.testing.daemon import LISTENING, Daemon, DaemonError
from llmedge.testing.hostile_process import HostileUpstream
from llmedge.testing.process import polled, record_of, wait_until
from llmedge.testing.upstream_process import FakeUpstream

__all__ = [
    "LISTENING", "Daemon", "DaemonError", "FakeCollector", "FakeUpstream", "HostileUpstream",
    "polled", "record_of", "wait_until",
]
