"""
SIGHUP reloads keys, limits and models from the configuration file while
requests keep flowing: none fails, the new settings hold from the next
request, and a configuration that does not load is refused with a log line
while the running one stays.
"""

import http.client
import json
import os
import signal
import threading

import pytest

from llmedge.testing import Daemon, record_of

CHAT = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})


def config(keys, burst=100000, extra=""):
    return (
        "[auth]\n"
        f"api_keys = {json.dumps(keys)}\n"
        "[rate_limit]\n"
        f"rpm = 1\nburst = {burst}\n"
        + extra
    )


def status(daemon, key, path="/v1/chat/completions"):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    try:
        if path == "/v1/models":
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        else:
            connection.request("POST", path, CHAT, {"Authorization": f"Bearer {key}",
                                                    "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Load(threading.Thread):
    """
    Requests with one key, back to back on one keep-alive connection, until
    stopped; every status kept.
    """

    def __init__(self, daemon, key):
        super().__init__(daemon=True)
        self.address = daemon.host_port
        self.key = key
        self.statuses = []
        self.stopping = threading.Event()

    def run(self):
        connection = http.client.HTTPConnection(*self.address, timeout=10)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        while not self.stopping.is_set():
            try:
                connection.request("POST", "/v1/chat/completions", CHAT, headers)
                response = connection.getresponse()
                response.read()
                self.statuses.append(response.status)
            except (OSError, http.client.HTTPException) as e:
                self.statuses.append(repr(e))
                connection.close()
                connection = http.client.HTTPConnection(*self.address, timeout=10)
        connection.close()


@pytest.fixture
def env():
    # The file is the only source of keys here.
    return {k: v for k, v in os.environ.items() if k != "API_KEYS"}


def reloading_daemon(path, env, text):
    """
    A daemon reading its settings from the file at C{path}, written first.
    """
    path.write_text(text)
    daemon = Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(path)])
    daemon.env = env
    return daemon


def reload(daemon, path, text, line="SIGHUP: reloaded"):
    """
    Rewrite the file, SIGHUP, and wait for the log line saying so.
    """
    path.write_text(text)
    daemon.process.send_signal(signal.SIGHUP)
    return daemon.wait_for_line(lambda logged: line in logged)


def test_key_rotation_under_load(tmp_path, env):
    path = tmp_path / "llmedge.toml"
    with reloading_daemon(path, env, config(["sk-a", "sk-b"])) as daemon:
        load = Load(daemon, "sk-b")
        load.start()
        try:
            daemon.wait_for_line(lambda line: record_of(line).get("status") == 200)
            assert status(daemon, "sk-a")[0] == 200
            assert status(daemon, "sk-c")[0] == 401
            reload(daemon, path, config(["sk-b", "sk-c"], extra=(
                '[models."alias"]\ntargets = [{ provider = "mock", model = "mock" }]\n'
                '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n')))
            assert status(daemon, "sk-a")[0] == 401
            assert status(daemon, "sk-c")[0] == 200
            code, body = status(daemon, "sk-c", "/v1/models")
            assert code == 200
            assert sorted(m["id"] for m in json.loads(body)["data"]) == ["alias", "mock"]

            # A file that does not load: refused, the running config stays.
            reload(daemon, path, "[auth\napi_keys = ", "kept the running configuration")
            assert status(daemon, "sk-c")[0] == 200
            assert status(daemon, "sk-a")[0] == 401
            served_before = len(load.statuses)
        finally:
            load.stopping.set()
            load.join(15)
    assert len(load.statuses) > served_before > 10
    assert set(load.statuses) == {200}, [s for s in load.statuses if s != 200][:5]


def test_limits_follow_the_reloaded_file(tmp_path, env):
    path = tmp_path / "llmedge.toml"
    with reloading_daemon(path, env, config(["sk-a"])) as daemon:
        assert [status(daemon, "sk-a")[0] for _ in range(5)] == [200] * 5
        reload(daemon, path, config(["sk-a", "sk-fresh"], burst=2))
        assert [status(daemon, "sk-fresh")[0] for _ in range(3)] == [200, 200, 429]


def test_settings_that_need_a_restart_are_named(tmp_path, env):
    path = tmp_path / "llmedge.toml"
    with reloading_daemon(path, env, config(["sk-a"])) as daemon:
        line = reload(daemon, path, config(["sk-a"]) + "[upstream]\npool_size = 7\n",
                      "take effect on restart only")
        assert "upstream.pool_size" in line
        assert status(daemon, "sk-a")[0] == 200
