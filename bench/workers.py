"""
CPU per request with 0, 1 and 2 worker processes, side by side.

Starts the fake upstream, then for each worker count one `twistd llmedge`
with everything on (bench/processes.py: auth, rate limits, metrics, trace
propagation, JSON access log) and loads it with wrk at c50: through the
proxy to the fake upstream, and on the mock provider. CPU is read from
/proc for the whole process tree (supervisor and workers), so the figure
per request includes what the supervisor spends carrying the workers' log
lines and what the shared rate-limit table and per-process metric files
cost. 0 workers is the single process, for comparison.

    .venv/bin/python bench/workers.py [--duration 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from processes import KEY, BenchUpstream, start_llmedge  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--counts", default="0,1,2", help="worker counts (default 0,1,2)")
    options = parser.parse_args(argv)
    loadgen.ensure_wrk()
    counts = [int(c) for c in options.counts.split(",")]
    rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="llmedge-bench-") as scratch, \
            BenchUpstream() as upstream:
        for _ in range(options.rounds):
            for count in counts:
                tmp = Path(scratch) / f"w{count}"
                tmp.mkdir(exist_ok=True)
                daemon = start_llmedge(upstream, tmp, chunks=5, token_interval=0.005,
                                       tls=False, pool=None, workers=count)
                try:
                    where = daemon.listener(0)
                    for model in ("fake", "mock"):
                        # warm every worker up
                        loadgen.wrk(*where, model=model, key=KEY, connections=options.connections,
                                    threads=1, duration=2)
                        pid = daemon.process.pid
                        before = loadgen.cpu_seconds(pid)
                        load = loadgen.wrk(*where, model=model, key=KEY,
                                           connections=options.connections, threads=1,
                                           duration=options.duration)
                        cpu = loadgen.cpu_seconds(pid) - before
                        if load.errors:
                            sys.exit(f"bench: {load.errors} errors with {count} workers")
                        rows.setdefault((count, model), []).append(
                            (load.rate, cpu / load.requests * 1e6))
                finally:
                    daemon.stop()
    print(f"{loadgen.machine()}; wrk c{options.connections}, {options.duration} s per run, "
          f"{options.rounds} round(s), medians")
    print()
    print("| workers | path | req/s | CPU µs/request (all processes) | vs 1 worker |")
    print("|---|---|---|---|---|")
    for model, path in (("fake", "llmedge → fake upstream"), ("mock", "llmedge mock")):
        base = None
        for count in counts:
            samples = rows[(count, model)]
            rate = statistics.median(r for r, _ in samples)
            cpu = statistics.median(c for _, c in samples)
            if count == 1:
                base = cpu
            ratio = f"{cpu / base:.2f}×" if base and count >= 1 else "—"
            name = "0 (one process)" if count == 0 else str(count)
            print(f"| {name} | {path} | {rate:.0f} | {cpu:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
