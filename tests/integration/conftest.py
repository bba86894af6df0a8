"""
Fixtures starting the real daemon: C{twistd llmedge} in a child process,
on a free loopback port.
"""

import os
import shutil

import pytest

from llmedge.testing import Daemon


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


#: The key the shared daemon accepts.
API_KEY = "sk-integration-test-key"


@pytest.fixture(scope="module")
def daemon():
    """
    One daemon for a test module, with a small body limit so the limit is
    cheap to cross, and a burst large enough that only the rate-limit tests
    meet the limit.
    """
    env = {"MAX_REQUEST_SIZE": "65536", "API_KEYS": API_KEY, "RATE_LIMIT_BURST": "10000"}
    with Daemon(env=env) as running:
        yield running


@pytest.fixture(scope="module")
def hostile():
    """
    A hostile fake upstream (L{llmedge.testing.HostileUpstream}) for a test
    module.
    """
    from llmedge.testing import HostileUpstream

    with HostileUpstream() as running:
        yield running


@pytest.fixture
def auth():
    """
    Headers carrying the shared daemon's key.
    """
    return {"Authorization": f"Bearer {API_KEY}"}


def require_tool(name: str) -> None:
    """
    Skip the calling test when C{name} is not installed, unless CI asked
    for every tool (LLMEDGE_REQUIRE_TOOLS=1), where its absence fails.
    """
    if shutil.which(name) is None:
        if os.environ.get("LLMEDGE_REQUIRE_TOOLS"):
            pytest.fail(f"{name} is required here but not installed")
        pytest.skip(f"{name} is not installed (.ci/run installs it)")


def scrape(address) -> str:
    """
    The text of C{/metrics} of the daemon at C{address} (host, port).
    """
    import http.client

    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        connection.close()


def metric(address, name: str, **labels: str) -> float | None:
    """
    The value of sample C{name} whose labels include C{labels}, in the
    C{/metrics} of the daemon at C{address}, or L{None}.
    """
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(scrape(address)):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return sample.value
    return None


def wait_in_flight(address, count: int) -> None:
    """
    Wait until the daemon at C{address} counts C{count} requests in flight
    besides the scrape asking (their access lines come only at their end,
    so the gauge is what shows them running).
    """
    from llmedge.testing import wait_until

    wait_until(lambda: metric(address, "llmedge_http_requests_in_flight") == count + 1,
               what=f"{count} requests in flight")


class Steady:
    """
    Asked repeatedly, L{True} once C{measure()} gives the same value as the
    time before.
    """

    def __init__(self, measure) -> None:
        self._measure = measure
        self._last = object()

    def __call__(self) -> bool:
        value = self._measure()
        steady, self._last = value == self._last, value
        return steady


def send_until_unread(sock, data: bytes, bound: int, address, settled=None) -> int | None:
    """
    Send C{data} over and over on C{sock} (plain or TLS), never waiting for
    the peer to read: whenever the kernel takes no more, ask the daemon at
    C{address} whether it has stopped reading a connection
    (C{llmedge_unread_connections} above what it was). Return the bytes
    sent by then, or L{None} if C{bound} bytes went first. Event-driven: a
    C{select} returns as soon as the socket can take more.

    @param settled: asked too, when given, each time the kernel takes no
        more while llmedge says it stopped reading: L{True} once what the
        test watches (a count of answers) stopped moving since it was last
        asked, as the kernel's buffers may still grow and drain for a while.
    """
    import select
    import ssl

    from llmedge.testing import wait_until

    unread = lambda: metric(address, "llmedge_unread_connections") or 0.0  # noqa: E731
    before = unread()
    sock.setblocking(False)
    view = memoryview(data)
    sent = offset = 0
    try:
        while sent < bound:
            try:
                n = sock.send(view[offset:])
            except (BlockingIOError, ssl.SSLWantWriteError):
                if unread() > before and (settled is None or settled()):
                    return sent
                # Writable again, or the daemon says it stopped reading.
                wait_until(lambda: select.select([], [sock], [], 0.5)[1] or (
                    unread() > before and (settled is None or settled())),
                    timeout=60, what="the socket to drain or llmedge to stop reading")
                continue
            sent += n
            offset = (offset + n) % len(data)
        return None
    finally:
        sock.setblocking(True)
