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


def wait_in_flight(address, count: int) -> None:
    """
    Wait until the daemon at C{address} counts C{count} requests in flight
    besides the scrape asking (their access lines come only at their end,
    so the gauge is what shows them running).
    """
    import http.client

    from llmedge.testing import wait_until

    def scraped():
        connection = http.client.HTTPConnection(*address, timeout=5)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        return f"llmedge_http_requests_in_flight {count + 1}.0" in text

    wait_until(scraped, what=f"{count} requests in flight")
