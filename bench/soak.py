"""
RSS over a sustained run: llmedge proxying to the fake upstream under a
steady load well below its capacity, RSS sampled every 30 seconds.

    .venv/bin/python bench/soak.py [SECONDS] [CONNECTIONS]

Uses wrk (bench/wrk/post_chat.lua) against llmedge with everything on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from processes import BenchUpstream, Llmedge  # noqa: E402

KEY = "sk-bench"


def rss_mib(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def main(seconds: int, connections: int) -> None:
    with BenchUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "llmedge.toml"
        config.write_text(
            f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
            '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n')
        env = {"API_KEYS": KEY, "RATE_LIMIT_BURST": "100000000", "RATE_LIMIT_RPM": "1000000000"}
        args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
        daemon = Llmedge(args, env, Path(tmp) / "llmedge.log", listeners=1)
        daemon.start()
        try:
            pid = daemon.process.pid
            host, port = daemon.host_port
            load = subprocess.Popen(
                ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s",
                 str(BENCH / "wrk" / "post_chat.lua"), f"http://{host}:{port}"],
                env={**os.environ, "BENCH_MODEL": "fake", "BENCH_KEY": KEY},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            samples = []
            started = time.monotonic()
            while load.poll() is None:
                samples.append((round(time.monotonic() - started), rss_mib(pid)))
                time.sleep(30)
            summary = [line for line in load.stdout.read().splitlines() if "Requests/sec" in line]
            print(*summary)
        finally:
            daemon.stop()
    for elapsed, rss in samples:
        print(f"{elapsed:5d} s  RSS {rss:6.1f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600,
         int(sys.argv[2]) if len(sys.argv) > 2 else 4)
