# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
The fake upstream's option language: how a test tells the fake how to
misbehave through nothing but the model name it asks for.

A model name is a base name optionally followed by C{+}-separated options,
C{fake+chunks=3+interval=0.1}. Carrying the behaviour in the request itself
means the fake needs no control channel and no per-test state: requests from
tests running side by side cannot step on each other, and the proxy in the
middle passes the switch along untouched, as it passes any model name.

  - C{chunks=N}: the answer has N words, C{chunk0 chunk1 ...} (default 5).
  - C{interval=S}: seconds between stream events (default 0).
  - C{slow-headers=S}: wait S seconds before sending anything.
  - C{slow-first=S}: streams: headers at once, the first event S later.
  - C{status=NNN}: answer that status (400-599) with an error body in the
    endpoint's wire format.
  - C{retry-after=S}: with C{status}, a C{Retry-After: S} header.
  - C{html}: with C{status}, an HTML page instead of JSON, as a load
    balancer in front of a provider would send.
  - C{garbage}: a 200 whose body is not JSON; in streams, one C{data:}
    line that is not JSON, after the first event.
  - C{reset-after=N}: streams: abort the TCP connection after N events;
    other requests: abort it instead of answering.
  - C{hang}: never answer, keep the connection open.
  - C{size=B}: pad each piece of the answer's text to B characters, so a
    stream of many large events can fill a slow reader's buffers.

An unknown option, or a bad value, is answered with a 400 error: a typo in a
test should fail loudly, not silently test the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

#: What the fake says it was given as a prompt, whatever the prompt.
PROMPT_TOKENS = 7


class BadOption(ValueError):
    """
    A model name's options could not be understood; the message says which.
    """


@dataclass(frozen=True)
class Behaviour:
    """
    How the fake answers one request; see the module docstring for each
    option. The defaults are a prompt, well-formed answer.
    """

    chunks: int = 5
    interval: float = 0.0
    slow_headers: float = 0.0
    slow_first: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    html: bool = False
    garbage: bool = False
    reset_after: int | None = None
    hang: bool = False
    size: int | None = None

    def piece(self, index: int) -> str:
        """
        The answer's C{index}th piece of text, as one stream event carries
        it: C{"chunk0"}, then C{" chunk1"}, ..., padded with dots to
        L{size} characters when asked.
        """
        word = f"chunk{index}" if index == 0 else f" chunk{index}"
        if self.size is not None and len(word) < self.size:
            word += "." * (self.size - len(word))
        return word

    def text(self) -> str:
        """
        The whole answer, the pieces joined.
        """
        return "".join(self.piece(i) for i in range(self.chunks))


@dataclass(frozen=True)
class Ask:
    """
    One request to an API endpoint, as the wire formats need it.

    @ivar n: the request's number in the fake's log, also used in ids.
    @ivar model: the model name as requested, options included: answers
        echo it, as providers echo the name they were asked for.
    @ivar body: the parsed JSON body.
    @ivar created: the clock's time in whole seconds.
    @ivar stream: whether the answer is a stream.
    """

    n: int
    model: str
    body: dict[str, Any]
    behaviour: Behaviour
    created: int
    stream: bool


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


def _status(text: str) -> int:
    value = int(text)
    if not 400 <= value <= 599:
        raise ValueError(text)
    return value


def _retry_after(text: str) -> str:
    _seconds(text)
    return text


#: Option name -> (Behaviour field, parser of the value, or None for a flag).
_OPTIONS: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "chunks": ("chunks", _count),
    "interval": ("interval", _seconds),
    "slow-headers": ("slow_headers", _seconds),
    "slow-first": ("slow_first", _seconds),
    "status": ("status", _status),
    "retry-after": ("retry_after", _retry_after),
    "html": ("html", None),
    "garbage": ("garbage", None),
    "reset-after": ("reset_after", _count),
    "hang": ("hang", None),
    "size": ("size", _positive),
}

#: Every option the fake understands, for documentation and error messages.
OPTIONS = tuple(_OPTIONS)


def parse_model(model: str) -> tuple[str, Behaviour]:
    """
    Split a requested model name into its base name and the behaviour its
    options ask for.

    @raise BadOption: for an unknown option, a flag given a value, an option
        missing its value, or a value out of range.
    """
    base, *options = model.split("+")
    behaviour = Behaviour()
    for option in options:
        name, equals, value = option.partition("=")
        if name not in _OPTIONS:
            raise BadOption(
                f"unknown option {name!r} in model {model!r}; "
                f"the fake understands {', '.join(OPTIONS)}"
            )
        field, parse = _OPTIONS[name]
        if parse is None:
            if equals:
                raise BadOption(f"option {name!r} takes no value, in model {model!r}")
            behaviour = replace(behaviour, **{field: True})
            continue
        try:
            parsed = parse(value)
        except ValueError:
            raise BadOption(f"bad value {value!r} for option {name!r} in model {model!r}") from None
        behaviour = replace(behaviour, **{field: parsed})
    return base, behaviour
