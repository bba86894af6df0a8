"""
The fake upstream of llmedge.testing, with its request log capped: the
upstream bench/run.py loads.

The fake records every request it sees (its /_fake/log, for tests), so
under a benchmark's tens of thousands of requests its heap grows without
end and Python's full garbage collections, walking that log, stall it for
milliseconds: measured on 2026-11-27, wrk at c1 straight to the stock fake
had a p99 of 6–90 ms for a p50 of 0.35 ms; with the log capped, 1.6–1.9 ms,
and RSS stays at ~55 MiB instead of growing by ~7 KiB a request. A
benchmark reads no log, so this keeps at most the latest 1000 entries and
changes nothing else.

    python bench/fake_upstream.py --listen tcp:0:interface=127.0.0.1
"""

import sys

from llmedge.testing import upstream

KEEP = 1000
_record = upstream.FakeLog.record


def _capped(self, request):
    if len(self.entries) >= KEEP:
        del self.entries[:]
    return _record(self, request)


upstream.FakeLog.record = _capped

if __name__ == "__main__":
    upstream.main(sys.argv[1:])
