"""
llmedge's benchmark suite, the `make bench` entry point.

Starts the fake upstream (llmedge.testing's, its log capped: see
fake_upstream.py) and one `twistd llmedge` with everything on (auth with a
key, rate limits with a huge burst, metrics, the JSON access log to a file,
trace propagation), then loads, side by side in one run and in this order, so the neighbours'
noise falls on all alike:

  direct      wrk straight to the fake: req/s at c50, p50/p99 at c1
  yardsticks  the same against a minimal twisted.web server (stock, and
              with Twisted's Content-Type parse skipped) and nginx (when
              installed), answering the fake's JSON: see yardsticks.py
  proxy       the same through llmedge to the fake
  mock        the same answered by llmedge's mock provider
  stream      streamed chat completions (fake+chunks=N), direct and through
              llmedge: SSE events/s at c50 (wrk), time to first token at c1
  h2          llmedge over TLS, HTTP/1.1 vs HTTP/2 (h2load; when installed)
  litellm     LiteLLM's proxy to the same fake (when bench/litellm-venv exists)

Around every llmedge run it reads llmedge's CPU time from /proc, so each
run yields CPU microseconds per request: the figure that stays put on a
shared, noisy machine. It prints markdown tables of ratios, and issue
17's goals met or not (goals.py), and writes nothing into the repository.

    .venv/bin/python bench/run.py [--duration 10] [--only proxy --only mock]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import loadgen  # noqa: E402
from llmedge.testing import DaemonError, FakeUpstream  # noqa: E402
from measures import Results, check, measure, per_request_us  # noqa: E402
from processes import (  # noqa: E402
    KEY, LITELLM, BenchUpstream, Llmedge, litellm_proxy, start_llmedge, stream_models,
)
from report import report  # noqa: E402
from yardsticks import Yardsticks  # noqa: E402

PHASES = ("direct", "yardsticks", "proxy", "mock", "stream", "h2", "litellm")


class Bench:
    def __init__(self, options, upstream: FakeUpstream, daemon: Llmedge | None, tmp: Path,
                 yardsticks: Yardsticks | None = None):
        self.o = options
        self.upstream = upstream
        self.daemon = daemon
        self.yardsticks = yardsticks.servers if yardsticks else {}
        self.tmp = tmp
        self.results = Results()
        host, port = upstream.base_url[len("http://"):].rsplit(":", 1)
        self.fake = (host, int(port))
        self.burst_model, self.paced_model = stream_models(options.chunks,
                                                           options.token_interval)

    def pids(self, *names: str) -> dict[str, int]:
        known = {"fake": self.upstream.process.pid}
        if self.daemon is not None:
            known["llmedge"] = self.daemon.process.pid
        return {name: known[name] for name in names}

    def wrk_pair(self, row: str, where, model: str, pids: dict[str, int]) -> None:
        """
        req/s at c{connections}, then latency at c1, with CPU per request.
        """
        o = self.o
        wide, cpu_wide = measure(pids, lambda: check(loadgen.wrk(
            *where, model=model, key=KEY, connections=o.connections, threads=o.threads,
            duration=o.duration), f"{row} c{o.connections}"))
        one, cpu_one = measure(pids, lambda: check(loadgen.wrk(
            *where, model=model, key=KEY, connections=1, threads=1, duration=o.duration),
            f"{row} c1"))
        self.results.add(row, rate=wide.rate, p50=one.p50_ms, p99=one.p99_ms,
                         **per_request_us(cpu_wide, wide.requests),
                         **{k + "_c1": v for k, v in per_request_us(cpu_one, one.requests).items()})

    def stream_pair(self, row: str, where, burst: str, paced: str,
                    pids: dict[str, int]) -> None:
        """
        SSE events/s at c{connections} on bursts (the fake writes all events
        at once), then, one stream at a time, time to first token on paced
        streams (events apart, as a model sends them) and on bursts.
        """
        o = self.o
        wide, cpu = measure(pids, lambda: check(loadgen.wrk(
            *where, model=burst, key=KEY, connections=o.connections, threads=o.threads,
            duration=o.duration, stream=True), f"{row} c{o.connections}"))
        spaced = loadgen.streams(*where, model=paced, key=KEY, count=o.streams,
                                 seconds=o.duration)
        bursts = loadgen.streams(*where, model=burst, key=KEY, count=o.streams,
                                 seconds=o.duration)
        self.results.add(row, rate=wide.rate, events=bursts.events,
                         events_rate=wide.rate * bursts.events, streams=len(spaced.ttft_ms),
                         ttft50=spaced.ttft(0.5), ttft99=spaced.ttft(0.99),
                         burst_first50=bursts.ttft(0.5),
                         burst_total50=statistics.median(bursts.total_ms),
                         **per_request_us(cpu, wide.requests))

    def round(self, phases: set[str]) -> None:
        d = self.daemon
        if "direct" in phases:
            self.wrk_pair("direct", self.fake, "fake", self.pids("fake"))
        for row, (pid, where) in self.yardsticks.items():
            self.wrk_pair(row, where, "fake", {"server": pid})
        if "proxy" in phases:
            self.wrk_pair("proxy", d.listener(0), "fake", self.pids("llmedge", "fake"))
        if "mock" in phases:
            self.wrk_pair("mock", d.listener(0), "mock", self.pids("llmedge"))
        if "stream" in phases:
            self.stream_pair("stream direct", self.fake, self.burst_model, self.paced_model,
                             self.pids("fake"))
            self.stream_pair("stream proxy", d.listener(0), "fake-stream", "fake-paced",
                             self.pids("llmedge", "fake"))
        if "h2" in phases:
            host, port = d.listener(1)
            url = f"https://{host}:{port}/v1/chat/completions"
            for row, http1 in (("h1 tls", True), ("h2 tls", False)):
                load, cpu = measure(self.pids("llmedge"), lambda: check(loadgen.h2load(
                    url, body=self.tmp / "body.json", key=KEY, connections=self.o.connections,
                    duration=self.o.duration, http1=http1), row))
                self.results.add(row, rate=load.rate, **per_request_us(cpu, load.requests))

    def warm_up(self, phases: set[str]) -> None:
        if not self.o.warmup:
            return
        targets = []
        if "direct" in phases or "stream" in phases:
            targets.append((self.fake, "fake"))
        targets += [(where, "fake") for _, where in self.yardsticks.values()]
        if phases & {"proxy", "h2", "stream"}:
            targets.append((self.daemon.listener(0), "fake"))
        if "mock" in phases:
            targets.append((self.daemon.listener(0), "mock"))
        for where, model in targets:
            loadgen.wrk(*where, model=model, key=KEY, connections=self.o.connections,
                        threads=self.o.threads, duration=self.o.warmup)

    def litellm(self) -> None:
        """
        The same non-streamed and streamed loads through LiteLLM's proxy.
        """
        with litellm_proxy(self.upstream, self.tmp, chunks=self.o.chunks,
                           token_interval=self.o.token_interval) as (process, port):
            where = ("127.0.0.1", port)
            idle = loadgen.memory_kib(process.pid)["VmRSS"]
            if self.o.warmup:
                loadgen.wrk(*where, model="fake", key=KEY, connections=self.o.connections,
                            threads=self.o.threads, duration=self.o.warmup)
            pids = {"litellm": process.pid, "fake": self.upstream.process.pid}
            self.wrk_pair("litellm", where, "fake", pids)
            self.stream_pair("stream litellm", where, "fake-stream", "fake-paced", pids)
            memory = loadgen.memory_kib(process.pid)
            self.results.add("litellm memory", idle=idle, after=memory["VmRSS"],
                             peak=memory["VmHWM"])


def choose_phases(options, missing: dict[str, str]) -> set[str]:
    """
    The phases to run: those asked for, less those whose tools are missing,
    which C{missing} then names with the reason.
    """
    phases = set(options.only or PHASES)
    if not shutil.which("h2load"):
        missing["h2"] = "not installed (h2load: apt-get install nghttp2-client)"
    elif not importlib.util.find_spec("h2"):
        missing["h2"] = "not installed (llmedge's h2 extra)"
    if not LITELLM.exists():
        missing["litellm"] = f"not installed (no {LITELLM.relative_to(BENCH.parent)})"
    for phase in phases & missing.keys():
        if options.only:
            print(f"bench: skipping {phase}: {missing[phase]}", file=sys.stderr)
        phases.discard(phase)
    return phases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0].strip(),
        epilog="Phases: " + ", ".join(PHASES) + ". h2 runs when h2load (Debian's "
        "nghttp2-client) is installed, litellm when bench/litellm-venv/bin/litellm exists.")
    parser.add_argument("--duration", type=int, default=10,
                        help="whole seconds of each load run (default 10)")
    parser.add_argument("--connections", type=int, default=50,
                        help="connections of the throughput runs (default 50; latency is at 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="wrk threads (default 1: this machine has 2 vCPUs to share)")
    parser.add_argument("--only", action="append", choices=PHASES, metavar="PHASE",
                        help="run only this phase (repeatable): " + "|".join(PHASES))
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole sequence, report medians (default 1)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="whole seconds of untimed load on each path first (default 2)")
    parser.add_argument("--chunks", type=int, default=50,
                        help="events per streamed answer (default 50)")
    parser.add_argument("--token-interval", type=float, default=0.005,
                        help="seconds between the events of paced streams, the ones "
                        "timed for TTFT (default 0.005)")
    parser.add_argument("--streams", type=int, default=200,
                        help="sequential streams timed for TTFT, at most (default 200)")
    parser.add_argument("--upstream-pool", type=int, metavar="N",
                        help="llmedge's UPSTREAM_POOL_SIZE (default: llmedge's own, 128)")
    parser.add_argument("--log-dir", type=Path,
                        help="keep llmedge's JSON log and the configs here (default: a temp dir)")
    options = parser.parse_args(argv)
    if not 0 < options.duration <= 600 or not 0 <= options.warmup <= 60:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 60] seconds")
    if min(options.connections, options.threads, options.rounds, options.chunks,
           options.streams) < 1 or options.token_interval < 0:
        parser.error("counts must be at least 1 and --token-interval at least 0")
    loadgen.ensure_wrk()
    missing: dict[str, str] = {}
    phases = choose_phases(options, missing)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load_before = loadgen.loadavg()

    with tempfile.TemporaryDirectory(prefix="llmedge-bench-") as scratch:
        tmp = options.log_dir or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "body.json").write_text(json.dumps(
            {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}))
        with BenchUpstream() as upstream, ExitStack() as stack:
            yardsticks = None
            if "yardsticks" in phases:
                yardsticks = stack.enter_context(Yardsticks(upstream.base_url, tmp))
                missing.update(yardsticks.missing)
            daemon = None
            if phases - {"direct", "yardsticks", "litellm"}:
                daemon = start_llmedge(
                    upstream, tmp, chunks=options.chunks, token_interval=options.token_interval,
                    tls="h2" in phases, pool=options.upstream_pool)
            try:
                bench = Bench(options, upstream, daemon, tmp, yardsticks)
                bench.results.missing = missing
                bench.results.nginx_version = yardsticks.nginx_version if yardsticks else ""
                memory = {}
                if daemon:
                    memory["idle"] = loadgen.memory_kib(daemon.process.pid)["VmRSS"]
                bench.warm_up(phases)
                for _ in range(options.rounds):
                    bench.round(phases)
                if daemon:
                    after = loadgen.memory_kib(daemon.process.pid)
                    memory.update(after=after["VmRSS"], peak=after["VmHWM"])
                    bench.results.add("llmedge memory", **memory)
                    daemon.stop()
                    daemon = None
                if "litellm" in phases:
                    bench.litellm()
            finally:
                if daemon:
                    daemon.stop()
    print(report(bench.results, options, phases, started=started,
                 load=f"{load_before} → {loadgen.loadavg()}"))


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, DaemonError) as e:
        sys.exit(f"bench: {e}")
