"""
The processes bench/run.py measures, started and stopped here: the fake
upstream, `twistd llmedge` with everything on, and (optionally) LiteLLM's
proxy in front of the same fake. All listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmedge.testing import LISTENING, Daemon, DaemonError, FakeUpstream

BENCH = Path(__file__).resolve().parent
LITELLM = BENCH / "litellm-venv" / "bin" / "litellm"
KEY = "sk-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_models(chunks: int, token_interval: float) -> tuple[str, str]:
    """
    The fake's model names for streams: bursts of C{chunks} events written
    at once, and paced streams of 5 events C{token_interval} seconds apart.
    """
    return f"fake+chunks={chunks}", f"fake+chunks=5+interval={token_interval:g}"


class BenchUpstream(FakeUpstream):
    """
    L{FakeUpstream} running bench/fake_upstream.py: the same fake, its
    request log capped so its garbage collections stay short.
    """

    @property
    def command(self) -> list[str]:
        return [self.python, str(BENCH / "fake_upstream.py"), "--listen", self.listen]


class Llmedge(Daemon):
    """
    L{Daemon}, logging to a file instead of a pipe: under load the access
    log is thousands of lines a second, which a reader thread in the
    benchmark's process would pay for, in the CPU its clients share.
    """

    def __init__(self, args, env, logfile: Path, listeners: int) -> None:
        super().__init__(args, env=env, listeners=listeners)
        self.logfile = logfile

    @property
    def command(self) -> list[str]:
        return [f"--logfile={self.logfile}" if a == "--logfile=-" else a for a in super().command]

    def start(self) -> Llmedge:
        # A kept log (--log-dir) is appended to: read only this run's lines.
        self._offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        self.process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while len(self.addresses) < self.listeners:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DaemonError(f"llmedge did not start:\n{self.log}\n{self._logged()}")
            found = [f"{m['kind']}:{m['address']}" for m in LISTENING.finditer(self._logged())]
            self.addresses = list(dict.fromkeys(found))
            time.sleep(0.05)
        return self

    def _logged(self) -> str:
        if not self.logfile.exists():
            return ""
        with self.logfile.open() as f:
            f.seek(self._offset)
            return f.read()

    def listener(self, index: int) -> tuple[str, int]:
        """
        Host and port of the C{index}th C{--listen}. The log names TLS
        listeners "tcp:" too, so those are given a port up front.
        """
        specs = [self.args[i + 1] for i, a in enumerate(self.args) if a == "--listen"]
        fixed = {int(spec.split(":")[1]) for spec in specs if not spec.startswith("tcp:0:")}
        if not specs[index].startswith("tcp:0:"):
            return "127.0.0.1", int(specs[index].split(":")[1])
        for address in self.addresses:
            host, _, port = address.split(":", 1)[1].rpartition(":")
            if int(port) not in fixed:
                return host, int(port)
        raise DaemonError(f"no listener for {specs[index]} in {self.addresses}")


def start_llmedge(upstream: FakeUpstream, tmp: Path, *, chunks: int, token_interval: float,
                  tls: bool, pool: int | None, workers: int = 0) -> Llmedge:
    """
    C{twistd llmedge} with everything on: auth with L{KEY}, rate limits
    (a burst of a million: nothing is refused), metrics, trace propagation,
    the JSON access log at info; models C{fake}, C{fake-stream},
    C{fake-paced} (the fake upstream) and C{mock}. With C{tls}, a second
    listener on TLS, where HTTP/2 is offered by ALPN.
    """
    burst, paced = stream_models(chunks, token_interval)
    config = tmp / "llmedge.toml"
    config.write_text(
        f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
        '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n'
        f'[models."fake-stream"]\ntargets = [{{ provider = "up", model = "{burst}" }}]\n'
        f'[models."fake-paced"]\ntargets = [{{ provider = "up", model = "{paced}" }}]\n'
        '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n')
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    if tls:
        from llmedge.testing.certs import make_pki

        pki = make_pki(tmp)
        args += ["--listen", f"ssl:{free_port()}:interface=127.0.0.1"
                             f":privateKey={pki.key}:certKey={pki.chain}"]
    env = {"API_KEYS": KEY, "AUTH_ENABLED": "true", "RATE_LIMIT_ENABLED": "true",
           "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_BURST": "1000000",
           "ENABLE_METRICS": "true", "ENABLE_TRACING": "true", "LOG_LEVEL": "info"}
    if pool is not None:
        env["UPSTREAM_POOL_SIZE"] = str(pool)
    if workers:
        args += ["--workers", str(workers)]
    return Llmedge(args, env, tmp / "llmedge.log", listeners=2 if tls else 1).start()


@contextmanager
def litellm_proxy(upstream: FakeUpstream, tmp: Path, *, chunks: int,
                  token_interval: float) -> Iterator[tuple[subprocess.Popen, int]]:
    """
    LiteLLM's proxy (bench/litellm-venv) on a free loopback port, one
    worker, master key L{KEY}, no database, the same three fake models as
    llmedge; yields the process and its port once it answers.
    """
    burst, paced = stream_models(chunks, token_interval)
    entries = [f"  - model_name: {public}\n"
               f"    litellm_params: {{model: 'openai/{target}',"
               f" api_base: '{upstream.base_url}/v1', api_key: sk-upstream}}\n"
               for public, target in (("fake", "fake"), ("fake-stream", burst),
                                      ("fake-paced", paced))]
    config = tmp / "litellm.yaml"
    config.write_text("model_list:\n" + "".join(entries)
                      + f"general_settings: {{master_key: {KEY}}}\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False", "NO_PROXY": "127.0.0.1,localhost"}
    port = free_port()
    logfile = tmp / "litellm.log"
    with logfile.open("w") as log:
        process = subprocess.Popen(
            [str(LITELLM), "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port), "--num_workers", "1"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            _wait_until_live(f"http://127.0.0.1:{port}/health/liveliness", process, logfile)
            yield process, port
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: ours alone
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _wait_until_live(url: str, process: subprocess.Popen, logfile: Path,
                     seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("LiteLLM exited:\n" + logfile.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"LiteLLM did not answer {url} within {seconds:g} s")
