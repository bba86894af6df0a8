"""
The response cache through the real daemon, side by side in one run: CPU
per request and latency at concurrency 1 over one keep-alive connection,
for a hit (the same question again), a miss (a new question each time,
asked of the fake upstream and kept), the same questions with the cache
bypassed (a model with cache = false), and the mock provider (cache off
for it too). Auth, rate limits, metrics and the JSON access log are on.

    .venv/bin/python bench/cache_daemon.py [N]
"""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench.cpu_per_request import cpu_seconds, report  # noqa: E402
from llmedge.testing import Daemon, FakeUpstream  # noqa: E402

KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
counter = itertools.count()


def run(daemon, model: str, n: int, distinct: bool, expect: str) -> tuple[list[float], float]:
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=30)
    times = []
    before = cpu_seconds(daemon.process.pid)
    for _ in range(n):
        said = f"hi #{next(counter)}" if distinct else "hi"
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": said}]})
        started = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body, HEADERS)
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
        assert response.status == 200, response.status
        assert response.getheader("x-llmedge-cache") == expect, response.getheader("x-llmedge-cache")
    cpu = cpu_seconds(daemon.process.pid) - before
    connection.close()
    return times, cpu


def main(n: int) -> None:
    with FakeUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmedge.toml"
        config.write_text(
            f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
            '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n'
            '[models."fake-uncached"]\ntargets = [{ provider = "up", model = "fake" }]\n'
            'cache = false\n'
            '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\ncache = false\n')
        env = {"API_KEYS": KEY, "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_BURST": "1000000",
               "LOG_LEVEL": "info", "CACHE_ENABLED": "true"}
        args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
        with Daemon(args, env=env) as daemon:
            warm = max(50, n // 10)
            run(daemon, "fake", warm, True, "miss")
            run(daemon, "fake-uncached", warm, True, "bypass")
            run(daemon, "mock", warm, True, "bypass")
            run(daemon, "fake", 1, False, "miss")
            figures = {}
            for _ in range(2):  # alternate, so the neighbours' noise falls on all
                for name, model, distinct, expect in (
                        ("hit", "fake", False, "hit"),
                        ("miss (fake upstream)", "fake", True, "miss"),
                        ("bypass (fake upstream)", "fake-uncached", True, "bypass"),
                        ("mock provider", "mock", True, "bypass")):
                    times, cpu = run(daemon, model, n, distinct, expect)
                    old = figures.get(name, ([], 0.0))
                    figures[name] = (old[0] + times, old[1] + cpu)
    print(f"{2 * n} sequential non-streamed chat completions each, concurrency 1")
    for name, (times, cpu) in figures.items():
        report(name, times, cpu, len(times))
    mock = figures["mock provider"][1]
    for name, (_, cpu) in figures.items():
        print(f"{name:28s} CPU {cpu / mock:4.2f}x the mock provider's")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
