"""
CPU per request and added latency of llmedge, measured side by side.

Starts the fake upstream and llmedge (auth, rate limits, metrics and the
JSON access log all on), then sends the same non-streamed chat completion
N times over one keep-alive connection (concurrency 1): directly to the
fake upstream, through llmedge to the fake upstream, and to llmedge's mock
provider. It reports llmedge's CPU time per request (from /proc, the
figure that stays stable on a shared, noisy machine) and latency
percentiles, with the added latency as a difference of medians.

    .venv/bin/python bench/cpu_per_request.py [N]
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from llmedge.testing import Daemon, FakeUpstream  # noqa: E402

KEY = "sk-bench"
BODY = json.dumps({"model": "M", "messages": [{"role": "user", "content": "hi"}]})


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(host: str, port: int, path: str, model: str, n: int, headers: dict) -> list[float]:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    body = BODY.replace('"M"', json.dumps(model))
    times = []
    for _ in range(n):
        started = time.perf_counter()
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        times.append(time.perf_counter() - started)
    connection.close()
    return times


def report(name: str, times: list[float], cpu: float | None, n: int) -> None:
    times = sorted(times)
    p50 = statistics.median(times) * 1e3
    p99 = times[int(len(times) * 0.99) - 1] * 1e3
    cpu_text = f"{cpu / n * 1e6:7.0f} µs CPU/request" if cpu is not None else " " * 23
    print(f"{name:28s} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  {cpu_text}")


def main(n: int) -> None:
    with FakeUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmedge.toml"
        config.write_text(
            f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
            '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n'
            '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n')
        env = {"API_KEYS": KEY, "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_BURST": "1000000",
               "LOG_LEVEL": "info"}
        args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
        daemon = Daemon(args, env=env)
        daemon.start()
        try:
            up_host, up_port = upstream.base_url[7:].rsplit(":", 1)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
            warm = max(50, n // 10)
            run(up_host, int(up_port), "/v1/chat/completions", "fake", warm, headers)
            run(*daemon.host_port, "/v1/chat/completions", "fake", warm, headers)
            direct = run(up_host, int(up_port), "/v1/chat/completions", "fake", n, headers)
            before = cpu_seconds(daemon.process.pid)
            proxied = run(*daemon.host_port, "/v1/chat/completions", "fake", n, headers)
            proxied_cpu = cpu_seconds(daemon.process.pid) - before
            before = cpu_seconds(daemon.process.pid)
            mock = run(*daemon.host_port, "/v1/chat/completions", "mock", n, headers)
            mock_cpu = cpu_seconds(daemon.process.pid) - before
        finally:
            daemon.stop()
    print(f"{n} sequential non-streamed chat completions, concurrency 1")
    report("direct to the fake upstream", direct, None, n)
    report("llmedge -> fake upstream", proxied, proxied_cpu, n)
    report("llmedge mock provider", mock, mock_cpu, n)
    added = (statistics.median(proxied) - statistics.median(direct)) * 1e3
    print(f"added by llmedge (p50 difference): {added:.3f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
