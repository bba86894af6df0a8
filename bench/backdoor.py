"""
The back door under load: llmedge's memory while one upstream misbehaves,
and the latency of well-behaved clients meanwhile.

    .venv/bin/python bench/backdoor.py [--seconds 15] [--attackers 4]
                                       [--scenario endless-chunked] [--bound BYTES]

Three phases, one llmedge (everything on, default settings but the bound
given), two upstreams on loopback: the fake upstream (well-behaved) and the
hostile one (llmedge.testing.HostileUpstream).

  1. alone: wrk (1 thread, 4 connections, non-streamed chat) against the
     well-behaved model, nobody misbehaving;
  2. attacked: the same wrk run while C{--attackers} clients ask, one
     request after another, for a model whose upstream never ends its
     answer (C{--scenario}: endless-chunked, endless-json, huge-length,
     endless-error, endless-event, endless-line, endless-head), each
     refused by llmedge at its bound;
  3. after: the attackers stopped, llmedge's memory once more.

Printed: good requests/s and latency (p50, p99) in phases 1 and 2, the
ratio between them, llmedge's RSS at the start, its peak (VmHWM) and at the
end, and how the attackers' requests were answered.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from loadgen import ensure_wrk, memory_kib, wrk  # noqa: E402
from processes import KEY, BenchUpstream, Llmedge  # noqa: E402

from llmedge.testing import HostileUpstream  # noqa: E402

STREAMED = {"endless-event", "endless-line", "endless-events", "endless-comments"}


def start(upstream, hostile, tmp: Path, scenario: str, bound: int | None) -> Llmedge:
    config = tmp / "llmedge.toml"
    config.write_text(
        f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
        f'[providers.bad]\nkind = "openai"\nbase_url = "{hostile.base_url}/v1"\n'
        '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n'
        f'[models."bad"]\ntargets = [{{ provider = "bad", model = "hostile+{scenario}" }}]\n')
    env = {"API_KEYS": KEY, "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_BURST": "1000000",
           "LOG_LEVEL": "info"}
    if bound is not None:
        env["UPSTREAM_MAX_RESPONSE_BYTES"] = str(bound)
    return Llmedge(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                   env, tmp / "llmedge.log", listeners=1).start()


class Attackers:
    """
    Clients asking for the misbehaving model, one request after another
    each, until stopped; the statuses they got, counted.
    """

    def __init__(self, address: tuple[str, int], count: int, stream: bool) -> None:
        self._address = address
        self._stream = stream
        self._stop = threading.Event()
        self.statuses: Counter = Counter()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self) -> None:
        body = json.dumps({"model": "bad", "stream": self._stream,
                           "messages": [{"role": "user", "content": "hi"}]})
        while not self._stop.is_set():
            connection = http.client.HTTPConnection(*self._address, timeout=60)
            try:
                connection.request("POST", "/v1/chat/completions", body, {
                    "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
                answer = connection.getresponse()
                data = answer.read()
                status = str(answer.status)
                if answer.status == 200 and b'"error"' in data:
                    status += " + error event"
                self.statuses[status] += 1
            except OSError as e:
                self.statuses[type(e).__name__] += 1
            finally:
                connection.close()


class PeakRSS:
    """
    The largest RSS of a process seen while sampling every 50 ms (VmHWM
    says the same for the whole life; this is for one phase).
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, memory_kib(self._pid)["VmRSS"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--scenario", default="endless-chunked")
    parser.add_argument("--bound", type=int, default=None,
                        help="UPSTREAM_MAX_RESPONSE_BYTES (default: llmedge's own)")
    options = parser.parse_args()
    ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp, BenchUpstream() as upstream, \
            HostileUpstream() as hostile:
        daemon = start(upstream, hostile, Path(tmp), options.scenario, options.bound)
        try:
            address = daemon.listener(0)
            pid = daemon.process.pid
            wrk(*address, model="fake", key=KEY, connections=4, threads=1, duration=2)  # warm
            started = memory_kib(pid)["VmRSS"]
            with PeakRSS(pid) as quiet:
                alone = wrk(*address, model="fake", key=KEY, connections=4, threads=1,
                            duration=options.seconds)
            with PeakRSS(pid) as loud, \
                    Attackers(address, options.attackers, options.scenario in STREAMED) as bad:
                attacked = wrk(*address, model="fake", key=KEY, connections=4, threads=1,
                               duration=options.seconds)
            time.sleep(2)  # the last attackers' requests end; memory settles
            after = memory_kib(pid)
            sent = sum(entry["bytes_sent"] for entry in hostile.log())
        finally:
            daemon.stop()
    mib = 1024
    print(f"scenario {options.scenario}, {options.attackers} attackers, bound "
          f"{options.bound or 'default'}, {options.seconds} s a phase")
    print("| phase | good req/s | p50 ms | p99 ms | errors | RSS peak MiB |")
    print("|---|---|---|---|---|---|")
    for name, load, peak in (("alone", alone, quiet.peak), ("attacked", attacked, loud.peak)):
        print(f"| {name} | {load.rate:.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
              f"{load.errors} | {peak / mib:.1f} |")
    print(f"latency attacked/alone: p50 {attacked.p50_ms / alone.p50_ms:.2f}x, "
          f"p99 {attacked.p99_ms / alone.p99_ms:.2f}x; req/s {attacked.rate / alone.rate:.2f}x")
    print(f"RSS MiB: start {started / mib:.1f}, peak (VmHWM) {after['VmHWM'] / mib:.1f}, "
          f"after {after['VmRSS'] / mib:.1f}")
    print(f"attackers answered: {dict(bad.statuses)}; hostile upstream sent "
          f"{sent / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
