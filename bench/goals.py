"""
The yardsticks beside llmedge, and issue 17's goals met or not, as markdown
for bench/report.py.

Issue 17 states its goals as ratios to figures taken in the same run,
because absolute times on these shared machines move by ±40 % from one hour
to the next; this module only divides and subtracts what bench/run.py
measured side by side. CPU per request is the figure at c{connections}, as
in the issue (its "697 µs", "494 µs", "246 µs" and "115 µs" are c50
figures). The issue's "today 6×" and "4.3×" for the proxy and the mock
path are 697 / 115 and 494 / 115: multiples of the minimal server with
Twisted's Content-Type parse skipped, not of the stock one (697 / 246 is
2.8×), so both are judged, each on its own line.
"""

from __future__ import annotations

#: Display names of the rows of the yardstick table, in its order, with
#: the key of the CPU figure that is the serving process's own.
SERVERS = (
    ("nginx", "nginx, `return 200 '<json>'`, one process", "server"),
    ("twisted fast", "minimal twisted.web, Content-Type parse skipped", "server"),
    ("twisted", "minimal twisted.web, stock `Request`", "server"),
    ("direct", "the fake upstream, direct", "fake"),
    ("mock", "llmedge mock provider", "llmedge"),
    ("proxy", "llmedge → fake upstream (llmedge's CPU)", "llmedge"),
    ("litellm", "LiteLLM → fake upstream (LiteLLM's CPU)", "litellm"),
)

#: Where a goal's figures come from, for saying why one is not measured.
NEEDS = {"twisted": "yardsticks", "twisted fast": "yardsticks", "direct": "direct",
         "proxy": "proxy", "mock": "mock", "stream direct": "stream",
         "stream proxy": "stream", "h1 tls": "h2", "h2 tls": "h2", "litellm": "litellm"}


def _n(value, fmt: str, unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


def _div(a, b):
    return None if a is None or not b else a / b


def _sub(a, b):
    return None if a is None or b is None else a - b


def _why_not(results, rows: tuple[str, ...]) -> str:
    """
    Why a figure needing C{rows} is absent: what is not installed, or which
    phase was not run.
    """
    for row in rows:
        if row in results.rows:
            continue
        reason = results.missing.get(NEEDS[row])
        return f"not measured: {NEEDS[row]} {reason}" if reason else \
            f"not measured: the {NEEDS[row]} phase was not run"
    return "not measured"


def yardstick_table(results, c: int) -> list[str]:
    """
    Every server answering the non-streamed chat completion, cheapest
    first, with its own CPU per request as a multiple of the two minimal
    Twisted servers'.
    """
    r = results
    stock = r.get("twisted", "server_cpu_us")
    fast = r.get("twisted fast", "server_cpu_us")
    out = [
        "Side by side with the yardsticks: every server answers the same chat completion "
        "with the fake upstream's JSON; CPU is the serving process's own, from /proc:",
        "",
        f"| server | req/s c{c} | p50 c1 | p99 c1 | CPU/req c{c} | CPU/req c1 "
        f"| CPU c{c} / twisted.web stock | CPU c{c} / twisted.web, parse skipped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, name, who in SERVERS:
        if row == "nginx" and r.nginx_version:
            name = name.replace("nginx", r.nginx_version, 1)
        if row not in r.rows:
            if row in r.missing:
                out.append(f"| {name} | {r.missing[row]} | | | | | | |")
            continue
        cpu = r.get(row, f"{who}_cpu_us")
        out.append(
            f"| {name} | {_n(r.get(row, 'rate'), '.0f')} | {_n(r.get(row, 'p50'), '.3f', ' ms')} "
            f"| {_n(r.get(row, 'p99'), '.3f', ' ms')} | {_n(cpu, '.1f', ' µs')} "
            f"| {_n(r.get(row, f'{who}_cpu_us_c1'), '.1f', ' µs')} "
            f"| {_n(_div(cpu, stock), '.2f', '×')} | {_n(_div(cpu, fast), '.2f', '×')} |")
    out.append("")
    return out


def goal_table(results, c: int) -> list[str]:
    """
    Issue 17's goals, each with the figure of this run, the figure at the
    issue's filing (2026-12-04) and whether this run meets it.
    """
    r = results
    g = r.get
    proxy_cpu, mock_cpu = g("proxy", "llmedge_cpu_us"), g("mock", "llmedge_cpu_us")
    stock, fast = g("twisted", "server_cpu_us"), g("twisted fast", "server_cpu_us")
    times = "{:.2f}×".format
    ms = "{:+.3f} ms".format

    def cpu(a, b):
        # Both figures shown: a ratio moves when either side does.
        return lambda value: f"{value:.2f}× ({a:.0f} / {b:.0f} µs)"

    goals = [
        # goal, rows it needs, this run's value, bound, format, figure at filing
        (f"proxy CPU/request c{c} ≤ 3× minimal twisted.web's, stock `Request`",
         ("proxy", "twisted"), _div(proxy_cpu, stock), ("≤", 3),
         cpu(proxy_cpu, stock), "2.8× (697 / 246 µs)"),
        (f"proxy CPU/request c{c} ≤ 3× minimal twisted.web's, Content-Type parse skipped",
         ("proxy", "twisted fast"), _div(proxy_cpu, fast), ("≤", 3),
         cpu(proxy_cpu, fast), "6× (697 / 115 µs)"),
        (f"mock CPU/request c{c} ≤ 2× minimal twisted.web's, stock `Request`",
         ("mock", "twisted"), _div(mock_cpu, stock), ("≤", 2),
         cpu(mock_cpu, stock), "2.0× (494 / 246 µs)"),
        (f"mock CPU/request c{c} ≤ 2× minimal twisted.web's, Content-Type parse skipped",
         ("mock", "twisted fast"), _div(mock_cpu, fast), ("≤", 2),
         cpu(mock_cpu, fast), "4.3× (494 / 115 µs)"),
        ("added latency at c1, p50 (proxy − direct) ≤ 0.35 ms", ("proxy", "direct"),
         _sub(g("proxy", "p50"), g("direct", "p50")), ("≤", 0.35), ms, "+0.76 ms"),
        ("added latency at c1, p99 (proxy − direct) ≤ 1 ms", ("proxy", "direct"),
         _sub(g("proxy", "p99"), g("direct", "p99")), ("≤", 1.0), ms, "+0.97 ms"),
        ("time to first token added, p50 at c1 ≤ 0.5 ms", ("stream proxy", "stream direct"),
         _sub(g("stream proxy", "ttft50"), g("stream direct", "ttft50")), ("≤", 0.5), ms,
         "+1.38 ms"),
        (f"SSE events/s relayed at c{c} ≥ 0.8× the fake's direct",
         ("stream proxy", "stream direct"),
         _div(g("stream proxy", "events_rate"), g("stream direct", "events_rate")),
         ("≥", 0.8), times, "0.50×"),
        (f"HTTP/2 CPU/request ≤ 1.1× HTTP/1.1's, same TLS listener, c{c}",
         ("h1 tls", "h2 tls"), _div(g("h2 tls", "llmedge_cpu_us"), g("h1 tls", "llmedge_cpu_us")),
         ("≤", 1.1), times, "~1.45×"),
        (f"llmedge req/s at c{c} ≥ 50× LiteLLM's, both → fake", ("proxy", "litellm"),
         _div(g("proxy", "rate"), g("litellm", "rate")), ("≥", 50), times, "24×"),
    ]
    out = [
        "Issue 17's goals, as ratios within this run:",
        "",
        "| goal | this run | at filing (2026-12-04) | met |",
        "|---|---|---|---|",
    ]
    met = 0
    for goal, needs, value, (bound, limit), fmt, filing in goals:
        if value is None:
            out.append(f"| {goal} | {_why_not(r, needs)} | {filing} | — |")
            continue
        ok = value <= limit if bound == "≤" else value >= limit
        met += ok
        out.append(f"| {goal} | {fmt(value)} | {filing} | {'met' if ok else '**not met**'} |")
    measured = sum(value is not None for _, _, value, *_ in goals)
    out += ["", f"- {met} of {measured} measured goals met ({len(goals) - measured} not measured)."]
    if {"proxy", "mock"} & set(r.rows):
        out.append("- llmedge ran with every protection on: auth (one key), rate limits, "
                   "metrics, W3C trace propagation and the JSON access log at info.")
    out.append("")
    return out
