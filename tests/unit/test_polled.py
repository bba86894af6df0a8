"""
L{llmedge.testing.polled}: another process's state asked for on the
reactor's clock, within a bound. Driven here on a L{Clock}.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from llmedge.testing import DaemonError, polled


def test_the_first_true_answer_fires_it():
    clock, answers = Clock(), iter([0, None, "up"])
    d = polled(clock, lambda: next(answers), timeout=1, interval=0.1)
    assert not d.called
    clock.advance(0.1)
    assert not d.called
    clock.advance(0.1)
    assert d.result == "up"


def test_a_deferred_answer_is_waited_for():
    clock = Clock()
    d = polled(clock, lambda: succeed(True))
    assert d.result is True


def test_no_true_answer_within_the_bound_fails_naming_what():
    clock = Clock()
    d = polled(clock, lambda: False, timeout=1, interval=0.25, what="redis back")
    clock.pump([0.25] * 4)
    failures = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(DaemonError)
    assert "redis back" in str(failures[0].value)
    assert clock.getDelayedCalls() == []
