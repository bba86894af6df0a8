"""
Fixtures shared by unit and integration tests.
"""

import pytest

from tests.redis_server import RedisServer, require_redis_server


@pytest.fixture
def redis_server(tmp_path):
    """
    A private, empty redis-server for one test, stopped after it.
    """
    require_redis_server()
    server = RedisServer(str(tmp_path))
    with server:
        yield server
