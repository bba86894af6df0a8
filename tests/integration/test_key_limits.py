"""
Per-key bounds on the real daemon: requests in flight
(C{max_concurrent_requests}).
"""

import http.client
import json
import threading

from llmedge.testing import Daemon
from tests.integration.conftest import wait_in_flight


def chat(address, key, max_tokens=None, stream=False, model="mock", results=None):
    """
    One chat completion on a connection of its own: the response and its
    body (and its status appended to C{results}, for threads).
    """
    body = {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "count my tokens please"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    connection = http.client.HTTPConnection(*address, timeout=20)
    connection.request("POST", "/v1/chat/completions", json.dumps(body),
                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    if results is not None:
        results.append(response.status)
    return response, raw


def post(address, key, results=None):
    """
    A chat completion of the slow model: its status and JSON body.
    """
    response, raw = chat(address, key, model="slow", results=results)
    return response.status, json.loads(raw)


def test_max_concurrent_requests(tmp_path):
    config = tmp_path / "llmedge.toml"
    config.write_text(
        '[providers.slowmock]\nkind = "mock"\nlatency = 1.0\n'
        '[models."slow"]\ntargets = [{ provider = "slowmock", model = "mock" }]\n'
        '[[auth.keys]]\nname = "one"\nkey = "sk-one-at-a-time"\nmax_concurrent_requests = 1\n'
        '[[auth.keys]]\nname = "other"\nkey = "sk-other"\n')
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                env={"API_KEYS": ""}) as daemon:
        results = []
        first = threading.Thread(target=post, args=(daemon.host_port, "sk-one-at-a-time", results))
        first.start()
        # its access line comes only at its end: watch the in-flight gauge
        wait_in_flight(daemon.host_port, 1)
        status, body = post(daemon.host_port, "sk-one-at-a-time")
        assert status == 429
        assert body["error"]["code"] == "concurrency_limit_exceeded"
        assert post(daemon.host_port, "sk-other")[0] == 200  # another key is not bound
        first.join(20)
        assert results == [200]
        assert post(daemon.host_port, "sk-one-at-a-time")[0] == 200


def test_tokens_per_minute_reserved_then_settled(tmp_path):
    """
    A key with 600 tokens a minute: a request reserves its prompt and
    max_tokens, and gets back what the answer did not use, so the next
    request sees the real use; one that cannot fit is refused with 429,
    one larger than the budget as too large; streams settle on their usage
    chunk too.
    """
    config = tmp_path / "llmedge.toml"
    config.write_text(
        '[providers.slowmock]\nkind = "mock"\nlatency = 1.0\n'
        '[models."slow"]\ntargets = [{ provider = "slowmock", model = "mock" }]\n'
        '[models."mock"]\ntargets = [{ provider = "mock", model = "mock" }]\n'
        '[[auth.keys]]\nname = "t"\nkey = "sk-tokens"\ntokens_per_minute = 600\n')
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)],
                env={"API_KEYS": ""}) as daemon:
        address = daemon.host_port
        response, raw = chat(address, "sk-tokens", 300)
        assert response.status == 200
        usage = json.loads(raw)["usage"]
        assert response.getheader("x-ratelimit-limit-tokens") == "600"
        reserved = 600 - int(response.getheader("x-ratelimit-remaining-tokens"))
        assert reserved > 300  # the prompt and max_tokens
        # settled on usage: the next reservation sees only what was used
        response, _ = chat(address, "sk-tokens", 300)
        remaining = int(response.getheader("x-ratelimit-remaining-tokens"))
        assert 600 - usage["total_tokens"] - reserved <= remaining \
            <= 600 - usage["total_tokens"] - reserved + 10  # a few seconds of refill
        # a slow request holds its reservation while it runs: another that
        # does not fit beside it is refused until it settles
        results = []
        slow = threading.Thread(target=chat, args=(address, "sk-tokens", 400),
                                kwargs={"model": "slow", "results": results})
        slow.start()
        wait_in_flight(address, 1)
        response, raw = chat(address, "sk-tokens", 400)
        assert response.status == 429
        assert int(response.getheader("Retry-After")) >= 1
        slow.join(20)
        assert results == [200]
        assert chat(address, "sk-tokens", 400)[0].status == 200
        response, raw = chat(address, "sk-tokens", 5000)
        assert response.status == 429
        error = json.loads(raw)["error"]
        assert error["param"] == "max_tokens" and "too large" in error["message"]
        assert response.getheader("Retry-After") is None
        # a stream settles on its usage too
        response, raw = chat(address, "sk-tokens", 100, stream=True)
        assert response.status == 200 and raw.rstrip().endswith(b"data: [DONE]")
        after = int(response.getheader("x-ratelimit-remaining-tokens"))
        response, _ = chat(address, "sk-tokens", 100)
        assert int(response.getheader("x-ratelimit-remaining-tokens")) > after - 100 - 30


def test_max_concurrent_requests_hold_across_workers(tmp_path):
    """
    With two workers, the bound is the instance's: six slow requests at
    once, on connections the kernel spreads over both workers, and exactly
    two are admitted.
    """
    config = tmp_path / "llmedge.toml"
    config.write_text(
        '[providers.slowmock]\nkind = "mock"\nlatency = 1.5\n'
        '[models."slow"]\ntargets = [{ provider = "slowmock", model = "mock" }]\n'
        '[[auth.keys]]\nname = "two"\nkey = "sk-two-at-a-time"\nmax_concurrent_requests = 2\n')
    with Daemon(["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config),
                 "--workers", "2"], env={"API_KEYS": ""}) as daemon:
        for i in (0, 1):
            daemon.wait_for_line(lambda line, i=i: f"llmedge worker {i} serving" in line)
        results = []
        threads = [threading.Thread(target=post, args=(daemon.host_port, "sk-two-at-a-time",
                                                       results)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(results) == [200, 200, 429, 429, 429, 429]
