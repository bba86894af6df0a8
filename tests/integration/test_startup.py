"""
Starting and stopping the real C{twistd llmedge}: bad settings stop it with
one line, listeners of several kinds serve side by side, SIGTERM stops it.
"""

import http.client
import json
import socket
import subprocess
import sys

import pytest

from llmedge.testing import Daemon

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


#: Settings that let the daemon start; tests override them.
BASE = {"API_KEYS": "sk-startup-test"}


def run_twistd(*args, env=None, cwd=None, timeout=60):
    import os

    return subprocess.run(
        [*TWISTD, *args], env={**os.environ, **BASE, **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "env,setting",
    [
        ({"SERVER_ADDRESS": "0.0.0.0:99999"}, "SERVER_ADDRESS='0.0.0.0:99999'"),
        ({"MAX_REQUEST_SIZE": "abc"}, "MAX_REQUEST_SIZE='abc'"),
        ({"SERVER_TIMEOUT_SECONDS": "0"}, "SERVER_TIMEOUT_SECONDS='0'"),
        ({"AUTH_ENABLED": "perhaps"}, "AUTH_ENABLED='perhaps'"),
        ({"LLMEDGE_CONFIG": "/nonexistent/llmedge.toml"}, "/nonexistent/llmedge.toml"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line(env, setting):
    result = run_twistd("--nodaemon", "--pidfile=", "llmedge", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llmedge: ")
    assert setting in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_key_in_the_config_file_stops_start_up(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text("[server]\ntimeout_seconds = 5\nlisten_on = ['tcp:1']\n")
    result = run_twistd("--nodaemon", "--pidfile=", "llmedge", "--config", str(config))
    assert result.returncode != 0
    assert result.stderr.strip() == f"llmedge: {config}: unknown setting server.listen_on"


def test_unreadable_config_file_stops_start_up(tmp_path):
    # A directory cannot be read as a file, even by root (who reads mode 000).
    result = run_twistd("--nodaemon", "--pidfile=", "llmedge", "-c", str(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"llmedge: --config={tmp_path}: cannot read: Is a directory")


def test_bad_endpoint_stops_start_up():
    result = run_twistd("--nodaemon", "--pidfile=", "llmedge", "--listen", "carrier-pigeon:1")
    assert result.returncode != 0
    assert result.stderr.strip().startswith("llmedge: --listen=carrier-pigeon:1: ")


def test_port_in_use_stops_start_up_with_one_line():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = run_twistd("--nodaemon", "--pidfile=", "--logfile=-", "llmedge",
                            "--listen", f"tcp:{port}:interface=127.0.0.1")
    finally:
        holder.close()
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if "llmedge: --listen" in line]
    assert len(errors) == 1
    assert "Address already in use" in errors[0]
    assert "Traceback" not in result.stdout


def test_twistd_help_lists_the_plugin():
    result = run_twistd("--help")
    assert result.returncode == 0
    assert "llmedge" in result.stdout


def test_plugin_help_documents_every_option():
    result = run_twistd("llmedge", "--help")
    assert result.returncode == 0
    for option in ("--listen", "--config", "--version"):
        assert option in result.stdout


def test_tcp_and_unix_listeners_serve_side_by_side(tmp_path):
    path = tmp_path / "llmedge.sock"
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--listen", f"unix:{path}"],
                env=BASE) as d:
        assert d.addresses[1] == f"unix:{path}"
        assert json.loads(get_over_unix_socket(str(path), "/health"))["status"] == "healthy"
        connection = http.client.HTTPConnection(*d.host_port, timeout=10)
        connection.request("GET", "/health/live")
        assert connection.getresponse().status == 200


def get_over_unix_socket(path, target):
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.partition(b"\r\n\r\n")[2]


def test_server_address_decides_when_no_listen_is_given():
    with Daemon([], env={**BASE, "SERVER_ADDRESS": "127.0.0.1:0"}) as d:
        assert d.addresses[0].startswith("tcp:127.0.0.1:")


def test_sigterm_stops_the_daemon():
    daemon = Daemon(env=BASE).start()
    status = daemon.stop()
    # twistd re-raises SIGTERM after a clean reactor stop (systemd: success)
    assert status in (0, -15)
    assert "Main loop terminated." in daemon.log


def test_auth_on_without_keys_refuses_to_start():
    result = run_twistd("--nodaemon", "--pidfile=", "llmedge", env={"API_KEYS": ""})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AUTH_ENABLED=true but no API keys are configured" in lines[0]


def test_auth_off_is_a_logged_choice():
    with Daemon(env={"API_KEYS": "", "AUTH_ENABLED": "false"}) as d:
        assert any("Authentication is off" in line for line in d.output)
        connection = http.client.HTTPConnection(*d.host_port, timeout=10)
        connection.request("GET", "/v1/models")
        assert connection.getresponse().status == 200


def test_sighup_without_tls_keeps_the_daemon_serving():
    import signal as signals

    with Daemon(env=BASE) as daemon:
        daemon.process.send_signal(signals.SIGHUP)
        daemon.wait_for_line(lambda line: "SIGHUP: reloaded" in line)
        connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
        connection.request("GET", "/health/live")
        assert connection.getresponse().status == 200
