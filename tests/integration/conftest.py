"""
Fixtures starting the real daemon: C{twistd llmedge} in a child process,
on a free loopback port.
"""

import pytest

from llmedge.testing import Daemon


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def daemon():
    """
    One daemon for a test module, with a small body limit so the limit is
    cheap to cross.
    """
    with Daemon(env={"MAX_REQUEST_SIZE": "65536"}) as running:
        yield running
