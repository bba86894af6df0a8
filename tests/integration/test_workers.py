"""
C{twistd llmedge --workers N}, for real: worker processes serving the
supervisor's sockets (TLS included), one rate limit and one set of metrics
across them, a killed worker replaced, signals reaching every worker, and
no worker outliving the supervisor.
"""

import http.client
import json
import os
import re
import signal
import ssl

import pytest

from llmedge.testing import Daemon, record_of, wait_until
from llmedge.testing.certs import make_pki

KEY = "sk-workers-test"
CHAT = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
STARTED = re.compile(r"Started worker (\d+) \(pid (\d+)\)")


def worker_pids(daemon):
    """
    The pid of each worker index, the latest start winning.
    """
    pids = {}
    for line in daemon.output:
        match = STARTED.search(line)
        if match:
            pids[int(match[1])] = int(match[2])
    return pids


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def chat(host, port):
    """
    One request on a connection of its own (so the kernel may hand each
    to any worker).
    """
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/v1/chat/completions", CHAT, HEADERS)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def serving(daemon, count):
    for index in range(count):
        daemon.wait_for_line(lambda line, i=index: "llmedge worker %d serving" % i in line)


@pytest.fixture(scope="module")
def workers():
    env = {"API_KEYS": KEY, "RATE_LIMIT_RPM": "1", "RATE_LIMIT_BURST": "40"}
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"], env=env) as d:
        serving(d, 2)
        yield d


def test_workers_share_one_rate_limit_and_metrics(workers):
    """
    Forty requests are admitted in all, however the kernel spreads the
    connections over the two workers; C{/metrics} on any worker counts
    every worker's requests.
    """
    statuses = [chat(*workers.host_port) for _ in range(60)]
    assert statuses.count(200) == 40
    assert statuses.count(429) == 20
    served_by = set()
    for line in workers.output:
        if '"llmedge.access"' in line and "/v1/chat/completions" in line:
            served_by.add(json.loads(line)["worker"])
    assert served_by <= {0, 1} and served_by
    connection = http.client.HTTPConnection(*workers.host_port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    counts = {
        status: float(value)
        for status, value in re.findall(
            r'llmedge_http_requests_total\{method="POST",route="/v1/chat/completions",'
            r'status="(\d+)"\} (\S+)', text)
    }
    assert counts == {"200": 40.0, "429": 20.0}
    assert "llmedge_build_info{" in text


def test_killed_worker_is_replaced(workers):
    pids = worker_pids(workers)
    assert sorted(pids) == [0, 1]
    os.kill(pids[0], signal.SIGKILL)
    workers.wait_for_line(lambda line: "Worker 0 (pid %d) was killed by signal 9" % pids[0] in line)
    wait_until(lambda: worker_pids(workers)[0] != pids[0])
    new = worker_pids(workers)[0]
    wait_until(lambda: alive(new))
    workers.wait_for_line(
        lambda line: "llmedge worker 0 serving" in line
        and workers.output.index(line) > workers.output.index(
            next(x for x in workers.output if "was killed by signal 9" in x)))
    # the kernel keeps handing connections out: the others serve meanwhile
    assert chat(*workers.host_port) in (200, 429)
    assert alive(pids[1])


def test_sighup_reaches_every_worker(workers):
    before = len(workers.output)
    os.kill(workers.process.pid, signal.SIGHUP)
    for index in (0, 1):
        workers.wait_for_line(
            lambda line, i=index: "SIGHUP: reloaded" in line and record_of(line).get("worker") == i
            and workers.output.index(line) >= before)


def test_sigterm_stops_every_worker():
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"],
                env={"API_KEYS": KEY}) as daemon:
        serving(daemon, 2)
        pids = worker_pids(daemon).values()
        assert chat(*daemon.host_port) == 200
        status = daemon.stop()
    # every worker ended in time: a clean exit
    assert status == 0, daemon.text
    assert not any(alive(pid) for pid in pids)
    assert "Traceback" not in daemon.text


def test_workers_exit_when_the_supervisor_dies():
    """
    A supervisor killed with SIGKILL cannot stop its workers: they notice
    their lifeline closing and exit instead of serving on as orphans.
    """
    daemon = Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"],
                    env={"API_KEYS": KEY})
    with daemon:
        serving(daemon, 2)
        pids = list(worker_pids(daemon).values())
        daemon.process.kill()
        daemon.process.wait()
        wait_until(lambda: not any(alive(pid) for pid in pids))


def test_tls_and_unix_listeners_served_by_workers(tmp_path):
    pki = make_pki(tmp_path)
    sock = tmp_path / "llmedge.sock"
    args = [
        "--listen", f"ssl:0:interface=127.0.0.1:privateKey={pki.key}:certKey={pki.cert}",
        "--listen", f"unix:{sock}",
        "--workers", "2",
    ]
    with Daemon(args, env={"API_KEYS": KEY}) as daemon:
        serving(daemon, 2)
        port = int(daemon.addresses[0].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        for _ in range(4):
            connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
            connection.request("POST", "/v1/chat/completions", CHAT, HEADERS)
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["object"] == "chat.completion"
            connection.close()

        class UnixConnection(http.client.HTTPConnection):
            def connect(self):
                import socket

                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(sock))

        connection = UnixConnection("localhost", timeout=10)
        connection.request("POST", "/v1/chat/completions", CHAT, HEADERS)
        assert connection.getresponse().status == 200
        assert daemon.stop() == 0
    assert not sock.exists()

