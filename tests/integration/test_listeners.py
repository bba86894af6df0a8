"""
Every kind of listener an operator needs, with real clients: TLS beside
plain TCP, HTTP/2 over TLS, unix sockets, systemd socket activation, and
certificates replaced on SIGHUP without dropping connections.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys

import openai
import pytest

from llmedge.testing import Daemon
from llmedge.testing.certs import make_pki
from tests.integration.conftest import require_tool

KEY = "sk-listener-test"
ENV = {"API_KEYS": KEY, "MAX_REQUEST_SIZE": "65536"}
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "over tls"}]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def ssl_listen(pki, extra=""):
    return f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}{extra}"


@pytest.fixture(scope="module")
def tls_daemon(pki):
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--listen", ssl_listen(pki)]
    with Daemon(args, env=ENV) as running:
        yield running


def tls_port(daemon, index=1):
    return int(daemon.addresses[index].rsplit(":", 1)[1])


def curl(*args, timeout=30):
    require_tool("curl")
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_plain_and_tls_listeners_side_by_side(tls_daemon, pki):
    client = openai.OpenAI(
        base_url=f"https://localhost:{tls_port(tls_daemon)}/v1", api_key=KEY, max_retries=0,
        http_client=openai.DefaultHttpxClient(
            verify=ssl.create_default_context(cafile=str(pki.ca_cert))))
    assert client.chat.completions.create(**CHAT).choices[0].message.content == (
        "You said: over tls")
    plain = openai.OpenAI(base_url=tls_daemon.base_url + "/v1", api_key=KEY, max_retries=0)
    assert plain.models.list().data[0].id == "mock"


def test_curl_negotiates_http2_and_streams(tls_daemon, pki):
    result = curl("--http2", "--cacert", str(pki.ca_cert), "-i", "-N",
                  "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                  "-d", json.dumps({**CHAT, "stream": True}),
                  f"https://localhost:{tls_port(tls_daemon)}/v1/chat/completions")
    head, _, body = result.stdout.partition("\n\n")  # text mode made CRLF into LF
    assert head.startswith("HTTP/2 200")
    assert "x-request-id:" in head.lower()
    assert "x-ratelimit-remaining-requests:" in head.lower()
    assert body.endswith("data: [DONE]\n\n")
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                   for line in body.splitlines()
                   if line.startswith("data: {"))
    assert text == "You said: over tls"


@pytest.mark.parametrize("chunked", [False, True])
def test_http2_body_limit(tls_daemon, pki, tmp_path, chunked):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 300_000)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    result = curl("--http2", "--cacert", str(pki.ca_cert), "-w", "\n%{http_code} %{http_version}",
                  "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                  *extra, "--data-binary", f"@{big}",
                  f"https://localhost:{tls_port(tls_daemon)}/v1/chat/completions")
    body, _, status = result.stdout.rpartition("\n")
    assert status == "413 2"
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_tls_1_1_is_refused(tls_daemon):
    require_tool("openssl")
    result = subprocess.run(
        ["openssl", "s_client", "-tls1_1", "-connect", f"127.0.0.1:{tls_port(tls_daemon)}"],
        input="", capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Cipher is (NONE)" in result.stdout or "alert" in result.stderr


def test_tls_offers_h2_and_http1_over_alpn(tls_daemon, pki):
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_port(tls_daemon)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_unix_socket_with_a_mode(tmp_path):
    path = tmp_path / "llmedge.sock"
    with Daemon(["--listen", f"unix:{path}:mode=660"], env=ENV, listeners=1) as daemon:
        assert daemon.addresses == [f"unix:{path}"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        result = curl("--unix-socket", str(path), "http://llmedge/health")
        assert json.loads(result.stdout)["status"] == "healthy"


def test_systemd_socket_activation(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()

    def as_systemd_would():
        os.dup2(fd, 3)  # the first passed socket is fd 3

    # LISTEN_PID must be the daemon's own pid: the shell exports its pid,
    # then execs the daemon in its place.
    command = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh",
               sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
               "--nodaemon", "--pidfile=", "llmedge", "--listen", "systemd:domain=INET:index=0"]
    process = subprocess.Popen(
        command, env={**os.environ, **ENV, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "llmedge"},
        pass_fds=(fd, 3),
        preexec_fn=as_systemd_would, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener.close()
    try:
        for line in process.stdout:
            if "llmedge listening on" in line:
                break
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/health/live")
        assert connection.getresponse().status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_tls_settings_from_the_environment(pki):
    env = {**ENV, "ENABLE_TLS": "true", "TLS_CERT_PATH": str(pki.cert),
           "TLS_KEY_PATH": str(pki.key), "SERVER_ADDRESS": "127.0.0.1:0"}
    with Daemon([], env=env) as daemon:
        port = int(daemon.addresses[0].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200


def test_certificate_chain_file(pki):
    listen = ssl_listen(pki, f":extraCertChain={pki.ca_cert}")
    with Daemon(["--listen", listen], env=ENV) as daemon:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        with socket.create_connection(("127.0.0.1", tls_port(daemon, 0))) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version()


def run_twistd(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
         "--nodaemon", "--pidfile=", "llmedge", *args],
        env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout)


def test_missing_certificate_stops_start_up_naming_the_file(pki, tmp_path):
    missing = tmp_path / "nope.pem"
    result = run_twistd("--listen", f"ssl:0:privateKey={pki.key}:certKey={missing}")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert str(missing) in line


def test_key_that_does_not_match_the_certificate_stops_start_up(pki, tmp_path):
    other = make_pki(tmp_path)
    result = run_twistd("--listen", f"ssl:0:privateKey={other.key}:certKey={pki.cert}")
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("llmedge: --listen=ssl:0:")


def https_get(port, ca, path="/health", connection=None):
    context = ssl.create_default_context(cafile=str(ca))
    connection = connection or http.client.HTTPSConnection(
        "localhost", port, context=context, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return connection, response.status


def test_sighup_takes_up_a_new_certificate_without_dropping_connections(tmp_path):
    (tmp_path / "first").mkdir()
    first = make_pki(tmp_path / "first")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.cert, live / "cert.pem")
    shutil.copy(first.key, live / "key.pem")
    listen = f"ssl:0:interface=127.0.0.1:privateKey={live}/key.pem:certKey={live}/cert.pem"
    with Daemon(["--listen", listen], env=ENV) as daemon:
        port = tls_port(daemon, 0)
        established, status = https_get(port, first.ca_cert)
        assert status == 200
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = make_pki(second_dir)
        shutil.copy(second.cert, live / "cert.pem")
        shutil.copy(second.key, live / "key.pem")
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for_line(lambda line: "Reloaded the TLS settings" in line)
        assert https_get(port, second.ca_cert)[1] == 200
        with pytest.raises(ssl.SSLError):
            https_get(port, first.ca_cert)
        # the connection made before the reload still works
        assert https_get(port, first.ca_cert, connection=established)[1] == 200


def test_sighup_with_broken_files_keeps_the_old_certificate(tmp_path, pki):
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(pki.cert, live / "cert.pem")
    shutil.copy(pki.key, live / "key.pem")
    listen = f"ssl:0:interface=127.0.0.1:privateKey={live}/key.pem:certKey={live}/cert.pem"
    with Daemon(["--listen", listen], env=ENV) as daemon:
        (live / "cert.pem").write_text("not a certificate")
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for_line(lambda line: "Kept the old TLS settings" in line)
        assert https_get(tls_port(daemon, 0), pki.ca_cert)[1] == 200


