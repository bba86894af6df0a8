"""
bench/run.py's results as markdown: tables to paste into bench/README.md,
and the ratios between rows measured side by side, which are the figures to
compare across runs (absolute numbers move with the neighbours).
"""

from __future__ import annotations

import platform
import shlex
import sys

import loadgen
from goals import goal_table, yardstick_table


def _n(value, fmt: str, unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


def _ratio(a, b) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}×"


def _added(a, b) -> str:
    return "—" if a is None or b is None else f"{a - b:+.3f} ms"


def _versions() -> str:
    import twisted

    from llmedge import __version__

    wrk = "wrk"
    try:
        import subprocess

        first = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        wrk = first.split(" [")[0].strip() or wrk
    except OSError:
        pass
    return (f"Python {platform.python_version()}, Twisted {twisted.__version__}, "
            f"llmedge {__version__}, {wrk}")


def report(results, options, phases: set[str], *, started: str, load: str) -> str:
    r = results
    c = options.connections
    out = [
        f"### {started}: {loadgen.machine()}",
        "",
        f"{_versions()}; {options.duration:g} s per run, c{c} with {options.threads} wrk "
        f"thread(s), {options.rounds} round(s) (medians), upstream pool "
        f"{options.upstream_pool or 'default (128)'}; load average {load}.",
        "",
        "```sh",
        ".venv/bin/python " + shlex.join(["bench/run.py", *sys.argv[1:]]),
        "```",
        "",
    ]
    plain = [row for row in ("direct", "proxy", "mock", "litellm") if row in r.rows]
    if plain:
        names = {"direct": "direct to the fake upstream", "proxy": "llmedge → fake upstream",
                 "mock": "llmedge mock provider", "litellm": "LiteLLM proxy → fake upstream"}
        out += [
            "Non-streamed chat completions:",
            "",
            f"| path | req/s c{c} | p50 c1 | p99 c1 | proxy CPU/req c{c} | proxy CPU/req c1 "
            f"| fake CPU/req c{c} |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in plain:
            proxy = "litellm" if row == "litellm" else "llmedge"
            out.append(
                f"| {names[row]} | {_n(r.get(row, 'rate'), '.0f')} "
                f"| {_n(r.get(row, 'p50'), '.3f', ' ms')} | {_n(r.get(row, 'p99'), '.3f', ' ms')} "
                f"| {_n(r.get(row, proxy + '_cpu_us'), '.0f', ' µs')} "
                f"| {_n(r.get(row, proxy + '_cpu_us_c1'), '.0f', ' µs')} "
                f"| {_n(r.get(row, 'fake_cpu_us'), '.0f', ' µs')} |")
        out.append("")
        d_rate, d50, d99 = r.get("direct", "rate"), r.get("direct", "p50"), r.get("direct", "p99")
        for row, name in (("proxy", "llmedge → fake"), ("mock", "llmedge mock"),
                          ("litellm", "LiteLLM → fake")):
            if row not in r.rows:
                continue
            p50, p99 = r.get(row, "p50"), r.get(row, "p99")
            cpu_key = "litellm_cpu_us_c1" if row == "litellm" else "llmedge_cpu_us_c1"
            cpu = r.get(row, cpu_key)
            line = (f"- {name}: req/s at c{c} {_ratio(r.get(row, 'rate'), d_rate)} direct; "
                    f"p50 at c1 {_ratio(p50, d50)} direct ({_added(p50, d50)}), "
                    f"p99 {_ratio(p99, d99)} ({_added(p99, d99)}); "
                    f"CPU {_n(cpu, '.0f', ' µs')}/request at c1")
            out.append(line)
        if "litellm" in r.rows and "proxy" in r.rows:
            out.append(
                f"- llmedge vs LiteLLM, both → fake: req/s at c{c} "
                f"{_ratio(r.get('proxy', 'rate'), r.get('litellm', 'rate'))}, "
                f"CPU/request at c{c} {_ratio(r.get('proxy', 'llmedge_cpu_us'), r.get('litellm', 'litellm_cpu_us'))}, "
                f"added p50 at c1 {_added(r.get('proxy', 'p50'), d50)} vs "
                f"{_added(r.get('litellm', 'p50'), d50)}")
        out.append("")
    if "yardsticks" in phases:
        out += yardstick_table(r, c)
    streams = [row for row in ("stream direct", "stream proxy", "stream litellm") if row in r.rows]
    if streams:
        events = r.get(streams[0], "events")
        out += [
            f"Streamed chat completions. Throughput on bursts (fake+chunks={options.chunks}: "
            f"{_n(events, '.0f')} events and [DONE], written at once); time to first token "
            f"(TTFT) over up to {options.streams} sequential paced streams (5 events "
            f"{options.token_interval * 1e3:g} ms apart, so the first travels alone), and "
            "the first event and the end of a burst at c1:",
            "",
            f"| path | streams/s c{c} | SSE events/s c{c} | proxy CPU/stream c{c} "
            "| proxy CPU/event | TTFT p50 c1 | TTFT p99 c1 | burst: first event p50 "
            "| burst: whole p50 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in streams:
            proxy = {"stream proxy": "llmedge", "stream litellm": "litellm"}.get(row)
            cpu = r.get(row, f"{proxy}_cpu_us") if proxy else None
            per_event = cpu / r.get(row, "events") if cpu and r.get(row, "events") else None
            out.append(
                f"| {row.replace('stream ', '')} | {_n(r.get(row, 'rate'), '.0f')} "
                f"| {_n(r.get(row, 'events_rate'), '.0f')} "
                f"| {_n(cpu, '.0f', ' µs')} | {_n(per_event, '.1f', ' µs')} "
                f"| {_n(r.get(row, 'ttft50'), '.3f', ' ms')} | {_n(r.get(row, 'ttft99'), '.3f', ' ms')} "
                f"| {_n(r.get(row, 'burst_first50'), '.3f', ' ms')} "
                f"| {_n(r.get(row, 'burst_total50'), '.3f', ' ms')} |")
        out.append("")
        base = "stream direct"
        for row, name in (("stream proxy", "llmedge"), ("stream litellm", "LiteLLM")):
            if row in r.rows and base in r.rows:
                out.append(
                    f"- {name}: TTFT added {_added(r.get(row, 'ttft50'), r.get(base, 'ttft50'))} "
                    f"at p50, {_added(r.get(row, 'ttft99'), r.get(base, 'ttft99'))} at p99 "
                    f"({_ratio(r.get(row, 'ttft50'), r.get(base, 'ttft50'))} direct); "
                    f"SSE events/s at c{c} "
                    f"{_ratio(r.get(row, 'events_rate'), r.get(base, 'events_rate'))} direct; "
                    f"first event of a burst "
                    f"{_added(r.get(row, 'burst_first50'), r.get(base, 'burst_first50'))} at p50")
        out.append("")
    if "h1 tls" in r.rows:
        out += [
            f"llmedge over TLS → fake, h2load c{c} (one stream per connection):",
            "",
            "| protocol | req/s | llmedge CPU/req |",
            "|---|---|---|",
        ]
        for row, name in (("h1 tls", "HTTP/1.1 + TLS"), ("h2 tls", "HTTP/2 + TLS")):
            out.append(f"| {name} | {_n(r.get(row, 'rate'), '.0f')} "
                       f"| {_n(r.get(row, 'llmedge_cpu_us'), '.0f', ' µs')} |")
        out += ["", f"- HTTP/2 / HTTP/1.1: req/s {_ratio(r.get('h2 tls', 'rate'), r.get('h1 tls', 'rate'))}, "
                f"CPU/request {_ratio(r.get('h2 tls', 'llmedge_cpu_us'), r.get('h1 tls', 'llmedge_cpu_us'))}", ""]
    memory = [(row, name) for row, name in (("llmedge memory", "llmedge"),
                                            ("litellm memory", "LiteLLM proxy"))
              if row in r.rows]
    if memory:
        out += ["Resident memory (VmRSS; peak is VmHWM):", "",
                "| process | idle, after start | after the load | peak |", "|---|---|---|---|"]
        for row, name in memory:
            mib = {k: (r.get(row, k) or 0) / 1024 or None for k in ("idle", "after", "peak")}
            out.append(f"| {name} | {_n(mib['idle'], '.1f', ' MiB')} "
                       f"| {_n(mib['after'], '.1f', ' MiB')} | {_n(mib['peak'], '.1f', ' MiB')} |")
        out.append("")
    if phases & {"yardsticks", "proxy", "mock", "stream", "h2", "litellm"}:
        out += goal_table(r, c)
    return "\n".join(out)
