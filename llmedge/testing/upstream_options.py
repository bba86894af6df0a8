# -*- test-case-name: tests.unit.test_fake_upstream -*-
"""
The fake upstream's option language: how a test tells the fake how to
misbehave through nothing but the model name it asks for.

A model name is a base name optionally followed by C{+}-separated options,
C{fake+chunks=3+interval=0.1}. Carrying the behaviour in the request itself
means the fake needs no per-test state (save for C{name=}, below): requests
from tests running side by side cannot step on each other, and the proxy in
the middle passes the switch along untouched, as it passes any model name.

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
  - C{oversize}: a 429 whose body is OpenAI's "Request too large for
    gpt-4o ... on tokens per min (TPM)", what OpenAI answers to one request
    bigger than the account's budget: about the request, not the
    deployment. It implies C{status=429}; any other status is refused.
  - C{fail-first=N}: only the first N requests fail, with C{status}
    (503 without one; 429 with C{oversize}), later ones are answered
    normally: a deployment that fails twice and then recovers.
  - C{name=NAME}: the deployment's name for run-time changes (below).

Some tests need a deployment to change while the proxy in front of it
runs: slow now, recovered later. The option language stays the one way to
say what to do, and a name says to whom: the control path
C{POST /_fake/behave} with C{{"name": "east", "options":
"slow-headers=0.3"}} sets options for C{NAME} (an empty string clears
them), and every request for a model with C{name=east} then behaves as its
model name says I{plus} those options, the run-time ones winning
(L{Behaviours}). Requests for models without C{name=} are untouched, so
tests that do not ask for run-time changes still cannot step on each other.

C{fail-first} counts the requests seen for the model's C{name}, or without
one for the exact model string: naming the deployment lets a test share
the count between model strings and restart it, since setting options for
C{NAME} again starts the count over. C{POST /_fake/reset} forgets the
counts with the requests it forgets; options set at run time stay until
set again.

An unknown option, or a bad value, is answered with a 400 error: a typo in a
test should fail loudly, not silently test the default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

#: What the fake says it was given as a prompt, whatever the prompt.
PROMPT_TOKENS = 7

#: The message of OpenAI's 429 for one request over the account's tokens
#: per minute, word for word.
OVERSIZE_MESSAGE = (
    "Request too large for gpt-4o in organization org-fake on tokens per min (TPM): "
    "Limit 30000, Requested 50000. The input or output tokens must be reduced in order "
    "to run successfully."
)


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
    oversize: bool = False
    fail_first: int | None = None
    name: str | None = None

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


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise ValueError(text)
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
    "oversize": ("oversize", None),
    "fail-first": ("fail_first", _count),
    "name": ("name", _name),
}

#: Every option the fake understands, for documentation and error messages.
OPTIONS = tuple(_OPTIONS)


def _fields(options: Sequence[str], where: str) -> dict[str, Any]:
    """
    The L{Behaviour} fields C{options} (C{"chunks=3"}, C{"html"}) set.

    @param where: what holds them, for error messages (C{"model 'x'"}).
    """
    fields: dict[str, Any] = {}
    for option in options:
        name, equals, value = option.partition("=")
        if name not in _OPTIONS:
            raise BadOption(
                f"unknown option {name!r} in {where}; "
                f"the fake understands {', '.join(OPTIONS)}"
            )
        field, parse = _OPTIONS[name]
        if parse is None:
            if equals:
                raise BadOption(f"option {name!r} takes no value, in {where}")
            fields[field] = True
            continue
        try:
            fields[field] = parse(value)
        except ValueError:
            raise BadOption(f"bad value {value!r} for option {name!r} in {where}") from None
    return fields


def _behaviour(fields: dict[str, Any], where: str) -> Behaviour:
    """
    The behaviour C{fields} ask for, with what one option implies of
    another: C{oversize} is a 429.
    """
    behaviour = Behaviour(**fields)
    if behaviour.oversize:
        if behaviour.status is None:
            behaviour = replace(behaviour, status=429)
        elif behaviour.status != 429:
            raise BadOption(f"option 'oversize' is a 429, not status={behaviour.status}, "
                            f"in {where}")
    return behaviour


def parse_model(model: str) -> tuple[str, Behaviour]:
    """
    Split a requested model name into its base name and the behaviour its
    options ask for (without what was set at run time: L{Behaviours}).

    @raise BadOption: for an unknown option, a flag given a value, an option
        missing its value, or a value out of range.
    """
    base, *options = model.split("+")
    return base, _behaviour(_fields(options, f"model {model!r}"), f"model {model!r}")


class Behaviours:
    """
    What tests changed while the fake runs: options set for each C{name=},
    and how many requests each C{fail-first} count has seen.

    Plain state, no clock: the control path and the endpoints share one
    per site, and unit tests use it directly.
    """

    def __init__(self) -> None:
        self._set: dict[str, dict[str, Any]] = {}
        self._seen: dict[tuple[str, str], int] = {}

    def behave(self, name: str, options: str) -> None:
        """
        From now on, requests for models with C{name=NAME} also behave as
        C{options} say (C{"slow-headers=0.3+status=500"}; C{""} clears);
        NAME's C{fail-first} count starts over.

        @raise BadOption: for a bad name or options; nothing is changed.
        """
        where = f"options {options!r} for name {name!r}"
        try:
            _name(name)
        except ValueError:
            raise BadOption(f"bad name {name!r}: letters, digits, '_', '.', '-'") from None
        fields = _fields(options.split("+"), where) if options else {}
        if "name" in fields:
            raise BadOption(f"option 'name' belongs in the model name, not in {where}")
        _behaviour(fields, where)
        if fields:
            self._set[name] = fields
        else:
            self._set.pop(name, None)
        self._seen.pop(("name", name), None)

    def options(self, model: str) -> tuple[str, Behaviour]:
        """
        The base name and behaviour a request for C{model} asks for: its
        options, then those set for its C{name=}, the latter winning.

        @raise BadOption: as L{parse_model}, or for a combination the two
            make that the fake cannot answer.
        """
        base, *options = model.split("+")
        where = f"model {model!r}"
        fields = _fields(options, where)
        name = fields.get("name")
        if name in self._set:
            fields.update(self._set[name])
            where += f" with options set for name {name!r}"
        return base, _behaviour(fields, where)

    def seen(self, model: str, behaviour: Behaviour) -> Behaviour:
        """
        Count one request for C{model} and say how it is answered: with
        C{fail-first=N}, the first N of its count fail with C{status}
        (503 by default), later ones do not fail at all.
        """
        if behaviour.fail_first is None:
            return behaviour
        key = ("name", behaviour.name) if behaviour.name is not None else ("model", model)
        count = self._seen[key] = self._seen.get(key, 0) + 1
        if count > behaviour.fail_first:
            return replace(behaviour, status=None)
        return replace(behaviour, status=behaviour.status or 503)

    def forget_requests(self) -> None:
        """
        Start every C{fail-first} count over (the log was reset).
        """
        self._seen.clear()
