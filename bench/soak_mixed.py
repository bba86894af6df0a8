"""
A mixed soak: non-streamed and streamed chat completions through llmedge to
the fake upstream at once, with clients that hang up mid-stream, for a
sustained run; errors counted, RSS sampled every 30 seconds.

    .venv/bin/python bench/soak_mixed.py [SECONDS]

Load, all on loopback, all through llmedge with everything on:
  - wrk, 2 connections, non-streamed (bench/wrk/post_chat.lua);
  - wrk, 2 connections, streams of 20 events written at once
    (bench/wrk/stream_chat.lua, model fake-stream);
  - a Python client opening paced streams (5 events 20 ms apart) and
    closing the socket after the first event, one after another.

Errors: any non-2xx answer, socket error or timeout wrk counts; a
hang-up client whose stream did not start with a 200 and an event; and any
error-level line or traceback in llmedge's log. RSS must stay flat.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from processes import KEY, BenchUpstream, Llmedge  # noqa: E402


def rss_mib(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def wrk(host, port, script, model, connections, seconds):
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s",
         str(BENCH / "wrk" / script), f"http://{host}:{port}"],
        env={**os.environ, "BENCH_MODEL": model, "BENCH_KEY": KEY},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(process) -> dict:
    out = process.stdout.read()
    line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out}")
    return json.loads(line[len("BENCH "):])


class HangUps(threading.Thread):
    """
    Streams abandoned after their first event, one after another.
    """

    def __init__(self, host, port, until):
        super().__init__(daemon=True)
        self.address = (host, port)
        self.until = until
        self.done = 0
        self.errors = []

    def run(self):
        body = json.dumps({"model": "fake-paced", "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body)
        while time.monotonic() < self.until:
            try:
                with socket.create_connection(self.address, timeout=10) as s:
                    s.sendall(request)
                    seen = b""
                    while b"data: " not in seen:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        seen += chunk
                    if not seen.startswith(b"HTTP/1.1 200") or b"data: " not in seen:
                        self.errors.append(seen[:200])
                    self.done += 1
            except OSError as e:
                self.errors.append(repr(e))


def main(seconds: int) -> None:
    with BenchUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = tmp / "llmedge.toml"
        config.write_text(
            f'[providers.up]\nkind = "openai"\nbase_url = "{upstream.base_url}/v1"\n'
            '[models."fake"]\ntargets = [{ provider = "up", model = "fake" }]\n'
            '[models."fake-stream"]\ntargets = [{ provider = "up", model = "fake+chunks=20" }]\n'
            '[models."fake-paced"]\ntargets = [{ provider = "up", '
            'model = "fake+chunks=5+interval=0.02" }]\n')
        env = {"API_KEYS": KEY, "RATE_LIMIT_BURST": "100000000", "RATE_LIMIT_RPM": "1000000000"}
        log = tmp / "llmedge.log"
        daemon = Llmedge(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                         env, log, listeners=1)
        daemon.start()
        try:
            pid = daemon.process.pid
            host, port = daemon.host_port
            plain = wrk(host, port, "post_chat.lua", "fake", 2, seconds)
            streamed = wrk(host, port, "stream_chat.lua", "fake-stream", 2, seconds)
            hangups = HangUps(host, port, time.monotonic() + seconds)
            hangups.start()
            samples = []
            started = time.monotonic()
            while plain.poll() is None or streamed.poll() is None:
                samples.append((round(time.monotonic() - started), rss_mib(pid)))
                time.sleep(min(30, max(1, seconds / 20)))
            hangups.join(30)
            results = {"non-streamed": wrk_result(plain), "streamed": wrk_result(streamed)}
            time.sleep(1)  # the last access lines
            lines = log.read_text().splitlines()
        finally:
            daemon.stop()
    bad_log = [l for l in lines if '"level": "error"' in l or '"level": "critical"' in l
               or "Traceback" in l]
    aborted = sum(1 for l in lines if '"llmedge.access"' in l and '"status": 499' in l)
    print(f"{seconds} s mixed soak through llmedge (everything on)")
    for name, r in results.items():
        errors = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors",
                                    "status_errors", "timeouts"))
        print(f"  {name:13s} {r['requests']:8d} requests, "
              f"{r['requests'] / (r['duration_us'] / 1e6):7.0f}/s, errors {errors}")
    print(f"  hang-ups      {hangups.done:8d} streams abandoned after the first event, "
          f"errors {len(hangups.errors)}; logged as 499: {aborted}")
    print(f"  error lines or tracebacks in llmedge's log: {len(bad_log)}")
    for line in bad_log[:5]:
        print("    " + line[:300])
    for elapsed, rss in samples:
        print(f"  {elapsed:5d} s  RSS {rss:6.1f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600)
