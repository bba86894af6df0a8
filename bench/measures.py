"""
What bench/run.py keeps of each load run, and the two helpers every run
goes through: the CPU its processes spent meanwhile (from /proc), and the
refusal to report a run that saw errors.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

import loadgen


class Results:
    """
    Every measurement by row name, one entry per round; medians reported.
    C{missing} says why a row or phase was not measured ("not installed").
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = defaultdict(list)
        self.missing: dict[str, str] = {}
        self.nginx_version = ""

    def add(self, row: str, **values) -> None:
        self.rows[row].append(values)

    def get(self, row: str, key: str):
        values = [v[key] for v in self.rows.get(row, ()) if v.get(key) is not None]
        return statistics.median(values) if values else None


def measure(pids: dict[str, int], action):
    """
    Run C{action()}, returning its result and each named process's CPU
    seconds spent meanwhile.
    """
    before = {name: loadgen.cpu_seconds(pid) for name, pid in pids.items()}
    result = action()
    return result, {name: loadgen.cpu_seconds(pid) - before[name] for name, pid in pids.items()}


def per_request_us(cpu: dict[str, float], requests: int) -> dict[str, float | None]:
    """
    C{{name}_cpu_us}: each process's CPU microseconds per request served.
    """
    return {f"{name}_cpu_us": (seconds / requests * 1e6 if requests else None)
            for name, seconds in cpu.items()}


def check(load: loadgen.Load, what: str) -> loadgen.Load:
    """
    C{load}, unless it saw errors: then the suite stops, saying so.
    """
    if load.errors:
        sys.exit(f"bench: {what}: {load.errors} errors in {load.requests} requests; "
                 "a benchmark of errors measures nothing")
    return load
