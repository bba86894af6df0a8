"""
Fallback across targets and the circuit breaker.
"""

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from llmedge.errors import invalid_request
from llmedge.observe.exchange import Exchange
from llmedge.providers.base import Call
from llmedge.providers.fallback import Breaker, try_targets
from llmedge.providers.upstream import upstream_error

CALL = Call("chat.completions", {"model": "m", "messages": []})


class Scripted:
    """
    A provider answering from a script of results.
    """

    def __init__(self, name, *results):
        self.name = name
        self.results = list(results)
        self.calls = []

    def chat_completion(self, call, model):
        self.calls.append(model)
        result = self.results.pop(0)
        if isinstance(result, Deferred):
            return result
        if isinstance(result, Exception):
            return fail(result)
        return succeed(result)


def down(name):
    return upstream_error(name, 502, "down", "upstream_unreachable")


class FallbackTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.breaker = Breaker(self.clock, cooldown=10)
        self.exchange = Exchange(started=0)

    def run_targets(self, *providers):
        targets = [(p, p.name + "-model") for p in providers]
        return try_targets(targets, "chat_completion", CALL, self.breaker, self.clock,
                           self.exchange)

    def test_first_target_answers(self):
        a, b = Scripted("a", {"ok": 1}), Scripted("b", {"ok": 2})
        self.assertEqual(self.successResultOf(self.run_targets(a, b)), {"ok": 1})
        self.assertEqual(b.calls, [])

    def test_next_target_answers_when_the_first_fails(self):
        a, b = Scripted("a", down("a")), Scripted("b", {"ok": 2})
        self.assertEqual(self.successResultOf(self.run_targets(a, b)), {"ok": 2})
        self.assertEqual(self.exchange.provider, "b")
        self.assertEqual([x["provider"] for x in self.exchange.attempts], ["a", "b"])
        self.assertEqual(self.exchange.attempts[0]["error"], "upstream_unreachable")

    def test_request_errors_are_not_retried(self):
        a, b = Scripted("a", invalid_request("bad", param="x")), Scripted("b", {"ok": 2})
        failure = self.failureResultOf(self.run_targets(a, b))
        self.assertEqual(failure.value.status, 400)
        self.assertEqual(b.calls, [])

    def test_last_error_is_answered_when_every_target_fails(self):
        a, b = Scripted("a", down("a")), Scripted("b", upstream_error("b", 504, "slow", "upstream_timeout"))
        failure = self.failureResultOf(self.run_targets(a, b))
        self.assertEqual(failure.value.code, "upstream_timeout")

    def test_failed_provider_is_skipped_during_its_cooldown(self):
        a, b = Scripted("a", down("a"), {"ok": "a"}), Scripted("b", {"ok": 2}, {"ok": 3})
        self.successResultOf(self.run_targets(a, b))
        self.assertEqual(self.successResultOf(self.run_targets(a, b)), {"ok": 3})
        self.assertEqual(a.calls, ["a-model"])

    def test_provider_is_tried_again_after_its_cooldown(self):
        a, b = Scripted("a", down("a"), {"ok": "a"}), Scripted("b", {"ok": 2})
        self.successResultOf(self.run_targets(a, b))
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(self.run_targets(a, b)), {"ok": "a"})

    def test_when_every_target_cools_down_the_first_is_tried_anyway(self):
        a = Scripted("a", down("a"), {"ok": "again"})
        self.failureResultOf(self.run_targets(a))
        self.assertEqual(self.successResultOf(self.run_targets(a)), {"ok": "again"})

    def test_cancelling_cancels_the_current_attempt(self):
        cancelled = []
        a = Scripted("a", Deferred(cancelled.append))
        d = self.run_targets(a, Scripted("b", {"ok": 2}))
        d.cancel()
        self.assertEqual(len(cancelled), 1)
        self.failureResultOf(d)

    def test_single_target_success_records_no_attempts(self):
        self.successResultOf(self.run_targets(Scripted("a", {"ok": 1})))
        self.assertEqual(self.exchange.attempts, [])


@pytest.mark.parametrize("cooldown", [0, 0.0])
def test_zero_cooldown_never_opens(cooldown):
    breaker = Breaker(Clock(), cooldown)
    breaker.failed("a")
    assert not breaker.is_open("a")


def test_cooling_down_is_visible_in_a_metric():
    from prometheus_client import generate_latest

    from llmedge.observe.metrics import Metrics

    clock = Clock()
    breaker = Breaker(clock, cooldown=5)
    metrics = Metrics(["m"])
    metrics.watch_breaker(breaker, ["a", "b"])
    breaker.failed("a")
    text = generate_latest(metrics.registry).decode()
    assert 'llmedge_provider_cooling_down{provider="a"} 1.0' in text
    assert 'llmedge_provider_cooling_down{provider="b"} 0.0' in text
    clock.advance(5)
    text = generate_latest(metrics.registry).decode()
    assert 'llmedge_provider_cooling_down{provider="a"} 0.0' in text
