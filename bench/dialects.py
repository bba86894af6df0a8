"""
CPU of llmedge's own code per request in each dialect, side by side: the
same question asked of the mock as Chat Completions, as a Responses
request and as an Anthropic Messages request (plain and streamed), over
the in-memory transport of bench/inmemory.py (auth, rate limits, metrics
and the JSON access log on). Chat is answered by the mock directly; the
other two go through their codec and the chat codec both ways, so the
ratio is what translation costs.

    .venv/bin/python bench/dialects.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from twisted.logger import globalLogBeginner  # noqa: E402

from llmedge.observe.logging import JSONObserver, filtered  # noqa: E402
from tests.unit.support import Harness, raw_request  # noqa: E402

globalLogBeginner.beginLoggingTo([filtered(JSONObserver(open("/dev/null", "w")), "info")],
                                 redirectStandardIO=False)
h = Harness({"AUTH_ENABLED": "true", "API_KEYS": "k", "RATE_LIMIT_ENABLED": "true",
             "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_RPM": "100000000"})
SAY = "hi, what is the capital of France?"
ASKS = {
    "chat": ("/v1/chat/completions", {"model": "mock", "messages": [
        {"role": "user", "content": SAY}]}),
    "responses": ("/v1/responses", {"model": "mock", "input": SAY}),
    "messages": ("/v1/messages", {"model": "mock", "max_tokens": 100, "messages": [
        {"role": "user", "content": SAY}]}),
}


def measure(path, body, rounds=5, n=2000):
    data = raw_request("POST", path, body, {"Authorization": "Bearer k"})
    c = h.connect()

    def one():
        c.transport.clear()
        c.send(data)
        h.reactor.advance(0)  # streams deliver one event per reactor turn
        for _ in range(64):
            if not h.reactor.getDelayedCalls():
                break
            h.reactor.advance(0)

    for _ in range(300):
        one()
    figures = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            one()
        figures.append((time.process_time() - t) / n * 1e6)
    return sorted(figures)[rounds // 2]


results = {}
for stream in (False, True):
    for name, (path, body) in ASKS.items():
        label = name + (" stream" if stream else "")
        results[label] = measure(path, {**body, "stream": True} if stream else body)
for label, us in results.items():
    base = results["chat stream" if label.endswith("stream") else "chat"]
    print(f"{label:20s} {us:8.1f} us/request   {us / base:4.2f}x chat")
