"""
RATE_LIMIT_BACKEND=redis for real: two C{twistd llmedge} processes sharing
one limit through one redis-server, an outage met by the failure policy
(logged once), and limiting resumed when Redis is back, without restarting
llmedge.
"""

import http.client
import json

from llmedge.testing import Daemon, wait_until
from tests.redis_server import free_port

KEY = "sk-redis-test"


def redis_daemon(url, **settings):
    env = {"API_KEYS": KEY, "RATE_LIMIT_BACKEND": "redis", "REDIS_URL": url, **settings}
    return Daemon(env=env)


def get(daemon):
    """
    GET /v1/models on a connection of its own: (status, headers, body).
    """
    host, port = daemon.host_port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def lines_with(daemon, text):
    return [line for line in daemon.output if text in line]


def test_two_instances_share_one_limit(redis_server):
    # 20 at once, then one a minute: nothing refills during the test
    settings = {"RATE_LIMIT_BURST": "20", "RATE_LIMIT_RPM": "1"}
    with redis_daemon(redis_server.url, **settings) as one, \
            redis_daemon(redis_server.url, **settings) as two:
        statuses = [get((one, two)[i % 2])[0] for i in range(60)]
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    assert statuses[:20] == [200] * 20


def test_outage_fails_open_and_limits_resume_when_redis_is_back(redis_server):
    with redis_daemon(redis_server.url, RATE_LIMIT_BURST="2", RATE_LIMIT_RPM="1") as daemon:
        assert [get(daemon)[0] for _ in range(3)] == [200, 200, 429]
        redis_server.stop()
        outage = [get(daemon) for _ in range(5)]
        assert [status for status, _, _ in outage] == [200] * 5
        # headers as for a full bucket
        assert {h["x-ratelimit-remaining-requests"] for _, h, _ in outage} == {"1"}
        daemon.wait_for_line(lambda line: "is unavailable" in line)
        redis_server.start()  # same port, empty: a fresh burst of 2
        # llmedge reconnects on its own schedule: ask until it limits again
        wait_until(lambda: get(daemon)[0] == 429, timeout=20, what="limits resumed")
        daemon.wait_for_line(lambda line: "is back" in line)
        assert len(lines_with(daemon, "is unavailable")) == 1
        assert len(lines_with(daemon, "is back")) == 1
        line = json.loads(lines_with(daemon, "is unavailable")[0])
        assert line["level"] == "error" and "fail-open" in json.dumps(line)


def test_unreachable_redis_fail_closed_answers_503():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with redis_daemon(url, REDIS_FAILURE_POLICY="fail-closed",
                      REDIS_TIMEOUT_SECONDS="0.1") as daemon:
        for _ in range(3):
            status, headers, body = get(daemon)
            assert status == 503 and headers["retry-after"] == "1"
            assert json.loads(body)["error"]["code"] == "rate_limit_unavailable"
        daemon.wait_for_line(lambda line: "is unavailable" in line)
        assert len(lines_with(daemon, "is unavailable")) == 1


def test_workers_each_decide_in_redis(redis_server):
    settings = {"RATE_LIMIT_BURST": "5", "RATE_LIMIT_RPM": "1", "WORKERS": "2"}
    with redis_daemon(redis_server.url, **settings) as daemon:
        statuses = [get(daemon)[0] for _ in range(12)]
    assert statuses.count(200) == 5
