"""
The load generators and meters behind bench/run.py, kept apart from the
orchestration: wrk (HTTP/1.1, Lua scripts in bench/wrk/), h2load (HTTP/2,
optional), a small sequential streaming client for time to first token,
and readers of a process's CPU time and memory from /proc.

Every load loop here is bounded twice, in time and in count, and talks to
127.0.0.1 only: the callers pass loopback addresses and this module
refuses anything else.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"
TICK = os.sysconf("SC_CLK_TCK")


def _loopback(host: str) -> str:
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise ValueError(f"benchmarks only talk to loopback, not {host!r}")
    return host


# -- /proc ----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """
    C{pid} and its descendants (LiteLLM's CLI may run its server in a child).
    """
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU time of C{pid} and its descendants, all threads.
    """
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def memory_kib(pid: int) -> dict[str, int]:
    """
    VmRSS and VmHWM (peak RSS) of C{pid} and its descendants, in KiB.
    """
    found = {"VmRSS": 0, "VmHWM": 0}
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] += int(value.split()[0])
    return found


def machine() -> str:
    """
    One line naming the machine: cores, CPU model, kernel.
    """
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} vCPU {model}, Linux {os.uname().release}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- wrk --------------------------------------------------------------------

def ensure_wrk() -> str:
    """
    The path of wrk, installing Debian's package when missing and root;
    otherwise exit with one line saying what to do.
    """
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("bench: wrk is not installed; run `apt-get install wrk` as root (Debian package)")
    print("bench: wrk missing; apt-get install -y wrk", file=sys.stderr)
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], **quiet).returncode != 0:
        subprocess.run(["apt-get", "update"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, **quiet)
    return shutil.which("wrk") or sys.exit("bench: apt-get installed wrk but it is not on PATH")


@dataclass
class Load:
    """
    What one bounded load run measured.
    """

    requests: int
    seconds: float
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(host: str, port: int, *, model: str, key: str, connections: int, threads: int,
        duration: int, stream: bool = False) -> Load:
    """
    Run wrk for C{duration} seconds with bench/wrk/post_chat.lua (or the
    streaming variant) and return its totals and latency percentiles.
    """
    script = WRK_DIR / ("stream_chat.lua" if stream else "post_chat.lua")
    command = [
        "wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration:d}s",
        "--timeout", "10s", "--latency", "-s", str(script),
        f"http://{_loopback(host)}:{port}",
    ]
    env = {**os.environ, "BENCH_MODEL": model, "BENCH_KEY": key}
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=duration + 60)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    r = json.loads(line[len("BENCH "):])
    errors = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors",
                                "status_errors", "timeouts"))
    return Load(r["requests"], r["duration_us"] / 1e6, errors,
                r["p50_us"] / 1e3, r["p99_us"] / 1e3)


# -- h2load -------------------------------------------------------------------

def h2load(url: str, *, body: Path, key: str, connections: int, duration: int,
           http1: bool = False) -> Load:
    """
    Run h2load for C{duration} seconds against an https:// URL, over HTTP/2
    or (C{http1}) HTTP/1.1 on the same TLS listener.
    """
    _loopback(url.split("//", 1)[1].rsplit(":", 1)[0])
    command = [
        "h2load", f"-c{connections}", "-t1", "-m1", "-D", f"{duration:d}",
        "-d", str(body), "-H", "content-type: application/json",
        "-H", f"authorization: Bearer {key}", *(["--h1"] if http1 else []), url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    out = done.stdout
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if done.returncode != 0 or not (finished and counts and codes):
        raise RuntimeError(f"h2load failed ({done.returncode}): {out}{done.stderr}")
    seconds = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    errors = sum(int(n) for n in counts.groups()[1:] + codes.groups())
    return Load(int(counts[1]), seconds, errors)


# -- streams, one at a time ------------------------------------------------------

@dataclass
class Streams:
    """
    Sequential streams: time to the first event, and events per stream.
    """

    ttft_ms: list[float]
    total_ms: list[float]
    events: int

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    def ttft(self, q: float) -> float:
        return self._pct(self.ttft_ms, q)


def streams(host: str, port: int, *, model: str, key: str, count: int,
            seconds: float) -> Streams:
    """
    Ask for C{count} streamed chat completions one after another over one
    keep-alive connection (stopping early after C{seconds}); time each to
    its first C{data:} event and to its end.
    """
    connection = http.client.HTTPConnection(_loopback(host), port, timeout=30)
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    ttft, total, events = [], [], 0
    deadline = time.monotonic() + seconds
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            connection.request("POST", "/v1/chat/completions", body, headers)
            response = connection.getresponse()
            if response.status != 200:
                raise RuntimeError(f"stream answered {response.status}: {response.read()[:300]!r}")
            first, events = None, 0
            while line := response.readline():
                if line.startswith(b"data:"):
                    if first is None:
                        first = time.perf_counter()
                    if line.strip() != b"data: [DONE]":
                        events += 1
            ended = time.perf_counter()
            if first is None:
                raise RuntimeError("a stream ended without a data: event")
            ttft.append((first - started) * 1e3)
            total.append((ended - started) * 1e3)
    finally:
        connection.close()
    return Streams(ttft, total, events)
