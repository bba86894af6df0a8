"""
One request's attempts: ready deployments first, every deployment still
tried when all are open, health kept per deployment and per provider,
429s that stay local, retries with backoff within the deadline, the most
informative error; on a Clock, with scripted providers.
"""

from __future__ import annotations

import random

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock

from llmedge.errors import invalid_request
from llmedge.observe.exchange import Exchange
from llmedge.providers.base import Call
from llmedge.providers.upstream_errors import HOST, RATE_LIMIT, REQUEST, upstream_error
from llmedge.routing.attempts import Route, Target, plan, run
from llmedge.routing.breaker import OPEN
from llmedge.routing.health import Health
from llmedge.routing.tracked import Tracked

CALL = Call("chat.completions", {"model": "m", "messages": []})


class Scripted:
    """
    A provider answering each call with the next of its results, per
    upstream model.
    """

    def __init__(self, name, **scripts):
        self.name = name
        self.scripts = {model: list(results) for model, results in scripts.items()}
        self.calls = []

    def chat_completion(self, call, model):
        self.calls.append(model)
        result = self.scripts[model].pop(0)
        if isinstance(result, Deferred):
            return result
        if isinstance(result, Exception):
            return fail(result)
        return succeed(result)


def error(provider="p", status=502, code="upstream_error", scope="deployment", retry=None):
    headers = [(b"Retry-After", b"%d" % retry)] if retry is not None else []
    return upstream_error(provider, status, "failed", code, headers=headers, scope=scope)


def unreachable(provider="p"):
    return error(provider, code="upstream_unreachable", scope=HOST)


def limited(provider="p", retry=None):
    return error(provider, 429, "rate_limit_exceeded", RATE_LIMIT, retry)


class World:
    def __init__(self, threshold=3, cooldown=10.0, seed=1):
        self.clock = Clock()
        self.health = Health(self.clock, threshold, cooldown)
        self.rng = random.Random(seed)

    def route(self, *targets, strategy="ordered", attempts=None):
        routed = tuple(Target(p, m, 1.0, self.health.deployment(p.name, m)) for p, m in targets)
        return Route("m", routed, strategy, attempts or len(routed))

    def run(self, route, deadline=None, backoff=0.25):
        exchange = Exchange(started=0)
        d = run(route, "chat_completion", CALL, self.clock, exchange, self.rng, backoff, deadline)
        return d, exchange


def result(d):
    out = []
    d.addBoth(out.append)
    assert out, "not fired"
    return out[0]


def test_the_first_ready_deployment_answers():
    w = World()
    p = Scripted("p", a=[{"ok": "a"}], b=[{"ok": "b"}])
    d, exchange = w.run(w.route((p, "a"), (p, "b")))
    assert result(d) == {"ok": "a"}
    assert p.calls == ["a"]
    assert exchange.strategy == "ordered"
    assert [a["outcome"] for a in exchange.attempts] == ["ok"]


def test_a_failed_deployment_is_followed_by_the_next_at_once():
    w = World()
    p = Scripted("p", a=[error()], b=[{"ok": "b"}])
    d, exchange = w.run(w.route((p, "a"), (p, "b")))
    assert result(d) == {"ok": "b"}
    assert [(a["model"], a["outcome"]) for a in exchange.attempts] == [("a", "error"), ("b", "ok")]


def test_one_model_failing_leaves_its_neighbour_on_the_same_provider_alone():
    w = World(threshold=1)
    p = Scripted("p", broken=[error()], good=[{"ok": 1}, {"ok": 2}])
    result(w.run(w.route((p, "broken")))[0])
    assert w.health.deployment("p", "broken").breaker.state == OPEN
    d, _ = w.run(w.route((p, "good")))
    assert result(d) == {"ok": 1}
    assert w.health.deployment("p", "good").ready(w.clock.seconds())


def test_a_host_failure_opens_every_deployment_of_the_provider():
    w = World()
    q = Scripted("q", x=[unreachable("q")])
    p = Scripted("p", good=[{"ok": 1}])
    result(w.run(w.route((q, "x"), (p, "good")))[0])
    assert w.health.deployment("q", "other").state == OPEN
    assert w.health.provider_open("q") and not w.health.provider_open("p")


def test_open_deployments_go_last_not_away():
    w = World(threshold=1)
    p = Scripted("p", a=[error(), error()], b=[{"ok": "b"}])
    result(w.run(w.route((p, "a")))[0])  # opens a
    order = plan(w.route((p, "a"), (p, "b")), w.clock.seconds(), w.rng)
    assert [t.model for t in order] == ["b", "a"]


def test_when_every_deployment_is_open_each_is_still_tried():
    w = World(threshold=1)
    p = Scripted("p", a=[error(), error()], b=[error(), {"ok": "b"}])
    result(w.run(w.route((p, "a")))[0])
    q_route = w.route((p, "b"))
    result(w.run(q_route)[0])  # both open now
    d, exchange = w.run(w.route((p, "a"), (p, "b")))
    assert result(d) == {"ok": "b"}
    assert [a["model"] for a in exchange.attempts] == ["a", "b"]


def test_half_open_deployments_are_tried_before_open_ones():
    w = World(threshold=1, cooldown=10)
    p = Scripted("p", a=[error()], b=[error(), {"ok": "b"}], c=[{"ok": "c"}])
    result(w.run(w.route((p, "a")))[0])  # a open first
    w.clock.advance(5)
    result(w.run(w.route((p, "b")))[0])  # b open 5 s later
    w.clock.advance(5)  # a half-open, b still open
    order = plan(w.route((p, "b"), (p, "a")), w.clock.seconds(), w.rng)
    assert [t.model for t in order] == ["a", "b"]


def test_the_probe_s_success_closes_a_half_open_deployment():
    w = World(threshold=1, cooldown=10)
    p = Scripted("p", a=[error(), {"ok": 1}])
    result(w.run(w.route((p, "a")))[0])
    w.clock.advance(10)
    assert result(w.run(w.route((p, "a")))[0]) == {"ok": 1}
    assert w.health.deployment("p", "a").state == "closed"


def test_a_request_error_ends_the_loop_and_marks_nothing():
    w = World(threshold=1)
    bad = invalid_request("no")
    bad.retryable = False
    p = Scripted("p", a=[bad], b=[{"ok": 1}])
    d, _ = w.run(w.route((p, "a"), (p, "b")))
    assert result(d).value is bad
    assert p.calls == ["a"]
    assert w.health.deployment("p", "a").state == "closed"


def test_a_429_about_the_request_moves_on_and_cools_nothing():
    w = World(threshold=1)
    oversize = error(status=429, code="rate_limit_exceeded", scope=REQUEST)
    p = Scripted("p", a=[oversize, {"ok": "a"}], b=[{"ok": "b"}])
    d, _ = w.run(w.route((p, "a"), (p, "b")))
    assert result(d) == {"ok": "b"}
    health = w.health.deployment("p", "a")
    assert health.ready(w.clock.seconds()) and health.state == "closed"
    d, _ = w.run(w.route((p, "a"), (p, "b")))  # the next request: a first again
    assert result(d) == {"ok": "a"}


def test_a_429_with_retry_after_cools_that_deployment_only_for_that_long():
    w = World()
    p = Scripted("p", a=[limited(retry=7), {"ok": "a"}], b=[{"ok": "b"}, {"ok": "b2"}])
    result(w.run(w.route((p, "a"), (p, "b")))[0])
    assert not w.health.deployment("p", "a").ready(w.clock.seconds())
    assert result(w.run(w.route((p, "a"), (p, "b")))[0]) == {"ok": "b2"}
    w.clock.advance(7)
    assert result(w.run(w.route((p, "a"), (p, "b")))[0]) == {"ok": "a"}
    assert w.health.deployment("p", "a").breaker.state == "closed"


def test_when_all_were_rate_limited_the_shortest_wait_is_answered():
    w = World()
    p = Scripted("p", a=[limited(retry=30)], b=[limited(retry=5)])
    d, _ = w.run(w.route((p, "a"), (p, "b")))
    answered = result(d).value
    assert answered.status == 429 and (b"Retry-After", b"5") in answered.headers


@pytest.mark.parametrize("errors,code", [
    ([unreachable(), error(code="upstream_timeout", status=504)], "upstream_timeout"),
    ([error(code="upstream_malformed_response"), unreachable()], "upstream_malformed_response"),
    ([unreachable(), error(code="upstream_error", status=503)], "upstream_error"),
    ([limited(retry=3), unreachable()], "rate_limit_exceeded"),
])
def test_the_most_informative_error_is_answered(errors, code):
    w = World()
    p = Scripted("p", a=[errors[0]], b=[errors[1]])
    d, _ = w.run(w.route((p, "a"), (p, "b")))
    assert result(d).value.code == code


def test_retries_come_back_after_a_jittered_backoff():
    w = World()
    p = Scripted("p", a=[error(), error(), {"ok": 3}])
    d, exchange = w.run(w.route((p, "a"), attempts=3), backoff=1.0)
    assert not d.called and p.calls == ["a"]
    w.clock.advance(1.0)  # the first backoff is at most 1 s
    w.clock.advance(2.0)  # the second at most 2 s
    assert result(d) == {"ok": 3}
    assert len(exchange.attempts) == 3


def test_no_retry_waits_past_the_deadline():
    w = World()
    p = Scripted("p", a=[error(), {"ok": 2}])
    d, exchange = w.run(w.route((p, "a"), attempts=3), deadline=0.0001, backoff=5.0)
    assert result(d).value.code == "upstream_error"
    assert len(exchange.attempts) == 1


def test_a_rate_limited_deployment_is_asked_again_after_its_wait_within_the_deadline():
    w = World()
    p = Scripted("p", a=[limited(retry=2), {"ok": 2}])
    d, _ = w.run(w.route((p, "a"), attempts=2), deadline=10.0, backoff=0.0)
    assert not d.called
    w.clock.advance(2)
    assert result(d) == {"ok": 2}


def test_cancelling_during_a_backoff_stops_everything():
    w = World()
    p = Scripted("p", a=[error(), {"ok": 2}])
    d, _ = w.run(w.route((p, "a"), attempts=2), backoff=1.0)
    d.cancel()
    assert result(d).check(CancelledError)
    w.clock.advance(10)
    assert p.calls == ["a"]


def test_cancelling_an_attempt_frees_the_probe_and_the_count():
    w = World(threshold=1)
    pending = Deferred()
    p = Scripted("p", a=[error(), pending])
    result(w.run(w.route((p, "a")))[0])
    w.clock.advance(10)
    d, _ = w.run(w.route((p, "a")))
    health = w.health.deployment("p", "a")
    assert health.in_flight == 1 and not health.breaker.ready()
    d.cancel()
    result(d)
    assert health.in_flight == 0 and health.breaker.ready()


class Stream:
    usage = None
    headers = ()

    def __init__(self):
        self.done = Deferred()
        self.stopped = False

    def start(self, receiver):
        return self.done

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        self.stopped = True


def test_a_stream_counts_as_in_flight_until_it_ends():
    from zope.interface import directlyProvides

    from llmedge.providers.base import IEventStream

    w = World()
    stream = Stream()
    directlyProvides(stream, IEventStream)
    p = Scripted("p", a=[stream])
    answer = result(w.run(w.route((p, "a")))[0])
    assert isinstance(answer, Tracked)
    health = w.health.deployment("p", "a")
    assert health.in_flight == 1
    done = answer.start(lambda data: None)
    stream.done.callback(None)
    result(done)
    assert health.in_flight == 0


def test_time_to_first_byte_is_averaged_per_deployment():
    w = World()
    pending = Deferred()
    p = Scripted("p", a=[pending])
    d, _ = w.run(w.route((p, "a")))
    w.clock.advance(0.5)
    pending.callback({"ok": 1})
    result(d)
    assert w.health.deployment("p", "a").latency == pytest.approx(0.5)
