"""
C{/health/ready} on the real daemon: 503 while no configured provider can
be reached, 200 again once one can, without a restart.
"""

import http.client
import json
import socket

from llmedge.testing import Daemon

KEY = "sk-ready"


def ready(daemon):
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=5)
    try:
        connection.request("GET", "/health/ready")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_ready_follows_provider_reachability(tmp_path):
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
        config = tmp_path / "llmedge.toml"
        config.write_text(
            f'[providers.up]\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
            '[models."m"]\ntargets = [{ provider = "up", model = "m" }]\n')
        env = {"API_KEYS": KEY, "HEALTH_PROBE_INTERVAL_SECONDS": "0.2"}
        with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                    env=env) as daemon:
            # nothing listens on the port yet: refused (logged as the probe
            # records it, so /health/ready already says so)
            daemon.wait_for_line(lambda line: "Provider up is unreachable" in line)
            status, body = ready(daemon)
            assert status == 503
            assert body == {"status": "unready", "reason": "no configured provider is reachable"}
            live = http.client.HTTPConnection(*daemon.host_port, timeout=5)
            live.request("GET", "/health/live")
            assert live.getresponse().status == 200
            probe_port.listen()
            daemon.wait_for_line(lambda line: "Provider up is reachable again" in line)
            assert ready(daemon)[0] == 200


def test_mock_only_instance_is_ready():
    with Daemon(env={"API_KEYS": KEY}) as daemon:
        assert ready(daemon) == (200, {"status": "ready"})
