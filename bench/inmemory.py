"""
CPU of llmedge's own code per request, without sockets: the real site and
request objects driven over an in-memory transport (as the unit tests do),
with auth, rate limits, metrics and the JSON access log (to /dev/null) on.
No system calls, no other process: the steadiest figure on a noisy machine,
for comparing two versions of the hot path side by side.

    .venv/bin/python bench/inmemory.py
"""
import time, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.unit.support import Harness, raw_request
from twisted.logger import globalLogBeginner
from llmedge.observe.logging import JSONObserver, filtered
globalLogBeginner.beginLoggingTo([filtered(JSONObserver(open("/dev/null","w")), "info")], redirectStandardIO=False)
h = Harness({"AUTH_ENABLED": "true", "API_KEYS": "k", "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_RPM": "100000000"})
data = raw_request("POST", "/v1/chat/completions", {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}, {"Authorization": "Bearer k"})
c = h.connect()
def one():
    c.transport.clear(); c.send(data)
for _ in range(1000): one()
best = []
for r in range(5):
    t = time.process_time()
    for _ in range(3000): one()
    best.append((time.process_time()-t)/3000*1e6)
print("in-memory mock request: min %.1f us, median %.1f us" % (min(best), sorted(best)[2]))
