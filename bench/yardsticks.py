"""
The yardsticks bench/run.py measures beside llmedge (issue 17): servers
that answer the same chat completion with the same JSON and do nothing
else, so llmedge's cost can be read as a multiple of theirs, taken side by
side in one run on the same noisy machine.

  twisted       bench/yardstick_twisted.py, Twisted's stock Request
  twisted fast  the same, Twisted's per-request Content-Type (form) parse
                skipped: what any JSON server on Twisted can have for free
  nginx         `return 200 '<json>'`, one process, when nginx is installed
                (Debian's nginx, or nginx-light); the suite never installs it

The fake upstream itself, measured direct, is the fourth (run.py's
"direct"). All listen on 127.0.0.1 only, on free ports, with their
configuration and logs in the run's temporary directory: no root needed
and nothing written outside it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from llmedge.testing import DaemonError
from llmedge.testing.process import ChildProcess, wait_until
from processes import BENCH, KEY, free_port

def fake_answer(base_url: str) -> bytes:
    """
    The fake upstream's answer to the chat completion wrk sends, as bytes:
    what every yardstick answers, so they all write the same body.
    """
    body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        base_url + "/v1/chat/completions", data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


class TwistedYardstick(ChildProcess):
    """
    bench/yardstick_twisted.py in a child process, ready once it says it
    listens.
    """

    name = "yardstick"

    def __init__(self, answer: Path, fast: bool) -> None:
        super().__init__()
        self.port = free_port()
        self.fast = fast
        self.answer = answer

    @property
    def command(self) -> list[str]:
        return [sys.executable, str(BENCH / "yardstick_twisted.py"), "--port", str(self.port),
                "--answer", str(self.answer), *(["--fast-content-type"] if self.fast else [])]

    def ready(self, line: str) -> bool:
        return line == f"yardstick listening on tcp:127.0.0.1:{self.port}"


def nginx_config(answer: bytes, port: int, home: Path, configure: str) -> str:
    """
    An nginx configuration answering every request with C{answer}: one
    process in the foreground (no master, so no user switch as root and no
    second process to count), every path it writes inside C{home}, no
    access log (the Twisted yardsticks write none either), keep-alive
    unbounded in requests as Twisted's is. C{configure} is C{nginx -V}'s
    output: a temp path is set only for the modules compiled in, so nginx
    creates none of its default ones (under /var/lib/nginx).
    """
    text = answer.decode()
    if "$" in text:
        raise ValueError("nginx would read $ in the answer as a variable")
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    temps = [f"    {module}_temp_path {home / module};\n"
             for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
             if module == "client_body" or f"--without-http_{module}_module" not in configure]
    return (
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {home / 'nginx.pid'};\nerror_log {home / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n    access_log off;\n    keepalive_requests 1000000;\n" + "".join(temps)
        + f"    server {{\n        listen 127.0.0.1:{port};\n"
        "        location / {\n            default_type application/json;\n"
        f"            return 200 {quoted};\n        }}\n    }}\n}}\n")


class Nginx:
    """
    nginx on a free loopback port with L{nginx_config}, stopped by SIGTERM
    (its fast shutdown).
    """

    def __init__(self, binary: str, answer: bytes, tmp: Path) -> None:
        self.home = tmp / "nginx"
        self.home.mkdir(exist_ok=True)
        self.port = free_port()
        version = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10)
        config = self.home / "nginx.conf"
        config.write_text(nginx_config(answer, self.port, self.home, version.stderr))
        self.command = [binary, "-p", str(self.home), "-e", str(self.home / "error.log"),
                        "-c", str(config)]
        self.version = version.stderr.splitlines()[0].split(":", 1)[-1].strip()
        self.process: subprocess.Popen | None = None

    def start(self, seconds: float = 10) -> Nginx:
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            # Listening, or gone: nginx says which only in its error log.
            wait_until(lambda: self.process.poll() is not None or self._listening(),
                       timeout=seconds, what="nginx listening")
        except DaemonError:
            pass
        if self.process.poll() is None and self._listening():
            return self
        self.stop()
        log = self.home / "error.log"
        raise DaemonError("nginx did not start: "
                          + (log.read_text().strip()[-500:] if log.exists() else "no error log"))

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Yardsticks:
    """
    The yardsticks of one run, started together and stopped together.

    @ivar servers: row name to C{(pid, (host, port))}, for those running.
    @ivar missing: row name to why it is not measured ("not installed").
    """

    def __init__(self, base_url: str, tmp: Path) -> None:
        self.base_url = base_url
        self.tmp = tmp
        self.servers: dict[str, tuple[int, tuple[str, int]]] = {}
        self.missing: dict[str, str] = {}
        self.nginx_version = ""
        self._stack = ExitStack()

    def __enter__(self) -> Yardsticks:
        answer = fake_answer(self.base_url)
        path = self.tmp / "answer.json"
        path.write_bytes(answer)
        try:
            for row, fast in (("twisted", False), ("twisted fast", True)):
                server = self._stack.enter_context(TwistedYardstick(path, fast))
                self.servers[row] = (server.process.pid, ("127.0.0.1", server.port))
            binary = shutil.which("nginx")
            if binary is None:
                self.missing["nginx"] = ("not installed (no nginx on PATH: Debian's nginx "
                                         "or nginx-light)")
            else:
                try:
                    nginx = Nginx(binary, answer, self.tmp).start()
                except (DaemonError, OSError, ValueError) as e:
                    self.missing["nginx"] = f"did not start: {' '.join(str(e).split())[:200]}"
                else:
                    self._stack.callback(nginx.stop)
                    self.nginx_version = nginx.version
                    self.servers["nginx"] = (nginx.process.pid, ("127.0.0.1", nginx.port))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
