"""
CPU of llmedge's own code per request with the response cache, side by
side over the in-memory transport of bench/inmemory.py (auth, rate limits,
metrics and the JSON access log on), in one process and one run:

  - mock:  cache off, the mock provider answers (the yardstick the issue
           names: a hit must cost no more than this);
  - miss:  cache on, every request a new question: the mock answers and
           the answer is kept (the cache's cost on top of the mock);
  - hit:   cache on, the same question again: answered from the memory
           backend, no provider called.

For chat (plain and streamed) and for embeddings (whose mock answer, 1536
floats, is dearer to make than to give back).

    .venv/bin/python bench/cache.py
"""
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from twisted.logger import globalLogBeginner  # noqa: E402

from llmedge.observe.logging import JSONObserver, filtered  # noqa: E402
from tests.unit.support import Harness, raw_request  # noqa: E402

globalLogBeginner.beginLoggingTo([filtered(JSONObserver(open("/dev/null", "w")), "info")],
                                 redirectStandardIO=False)
PROTECTED = {"AUTH_ENABLED": "true", "API_KEYS": "k", "RATE_LIMIT_ENABLED": "true",
             "RATE_LIMIT_BURST": "1000000", "RATE_LIMIT_RPM": "100000000"}
OFF = Harness(PROTECTED)
ON = Harness({**PROTECTED, "CACHE_ENABLED": "true"})
SAY = "hi, what is the capital of France?"
counter = itertools.count()


def chat(distinct: bool, stream: bool = False) -> tuple[str, dict]:
    text = f"{SAY} #{next(counter)}" if distinct else SAY
    body = {"model": "mock", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return "/v1/chat/completions", body


def embeddings(distinct: bool, stream: bool = False) -> tuple[str, dict]:
    text = f"{SAY} #{next(counter)}" if distinct else SAY
    return "/v1/embeddings", {"model": "mock", "input": text}


def measure(harness, ask, distinct, stream=False, rounds=5, n=2000):
    c = harness.connect()
    fixed = None if distinct else raw_request("POST", *ask(False, stream),
                                              {"Authorization": "Bearer k"})

    def one():
        data = fixed or raw_request("POST", *ask(True, stream), {"Authorization": "Bearer k"})
        c.transport.clear()
        c.send(data)
        harness.reactor.advance(0)  # streams deliver one event per reactor turn
        for _ in range(64):
            if not harness.reactor.getDelayedCalls():
                break
            harness.reactor.advance(0)

    for _ in range(300):
        one()
    assert b"x-llmedge-cache: " + (b"hit" if harness is ON and not distinct else
                                   b"miss" if harness is ON else b"bypass") \
        in c.transport.value().lower(), c.transport.value()[:400]
    figures = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            one()
        figures.append((time.process_time() - t) / n * 1e6)
    return sorted(figures)[rounds // 2]


for name, ask, stream in (("chat", chat, False), ("chat stream", chat, True),
                          ("embeddings", embeddings, False)):
    # The mock is asked distinct questions too, so that building the
    # request costs the same in all three columns.
    mock = measure(OFF, ask, True, stream)
    miss = measure(ON, ask, True, stream)
    hit = measure(ON, ask, False, stream)
    print(f"{name:12s} mock {mock:7.1f} us   miss {miss:7.1f} us ({miss / mock:4.2f}x mock)"
          f"   hit {hit:7.1f} us ({hit / mock:4.2f}x mock, {hit / miss:4.2f}x miss)")
