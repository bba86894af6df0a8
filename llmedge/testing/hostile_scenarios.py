# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
What the hostile fake upstream (L{llmedge.testing.hostile}) can be asked
to send, and the writers that send it without growing.

Two vocabularies, both carried by the request so that tests running side
by side never share state:

  - a B{script}, C{{"pieces": [base64...], "interval": S, "then":
    "close"|"keep"|"hang"|"abort"}}: exact bytes, paced, then an ending
    (L{parse_script}); registered for a request id or put in the body;
  - a B{named scenario} in the model name, C{hostile+NAME+key=value...}
    (L{parse_scenario}), for the answers that never end:

    - C{endless-json}: 200 JSON, close-delimited, a chat.completion's
      prefix then filler forever;
    - C{endless-chunked}: the same, chunked, chunks forever;
    - C{endless-error}: C{status=} (500) JSON, chunked, an error's prefix
      then filler forever;
    - C{huge-length}: 200 with C{Content-Length: 1000000000000}, filler;
    - C{endless-event}: an event stream whose second event never ends
      (C{data:} lines forever, never the blank line);
    - C{endless-line}: an event stream of one C{data:} line, never ended;
    - C{endless-events}: well-formed chunk events forever, no C{[DONE]},
      each with C{delta=CHARS} (1) of content;
    - C{endless-head}: a status line, then header lines forever;
    - C{endless-comments}: an event stream of comment lines forever;
    - C{drip}: a well-formed answer, one byte every C{interval=} (1) s;
    - C{hang}: no answer at all.

    The endless ones take C{block=BYTES} (65536), the size of each write,
    and C{rate=BYTES_PER_SECOND} (unlimited); the event streams also
    C{framing=chunked|close} (chunked).

L{llmedge.testing.hostile_writers} sends them.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmedge.testing.hostile_wire import chat_chunk, chunk, head, sse

CHAT_PREFIX = (b'{"id":"x","object":"chat.completion","choices":[{"index":0,'
               b'"message":{"role":"assistant","content":"')
ERROR_PREFIX = b'{"error":{"message":"'
HUGE_LENGTH = 1_000_000_000_000
DEFAULT_BLOCK = 64 * 1024
MAX_BLOCK = 4 * 1024 * 1024
ENDINGS = ("close", "keep", "hang", "abort")
JSON = (b"Content-Type", b"application/json")
EVENT_STREAM = (b"Content-Type", b"text/event-stream")


class BadScenario(ValueError):
    """
    A script or scenario could not be understood; the message says why.
    """


@dataclass(frozen=True)
class Script:
    """
    Exact bytes to send, C{interval} seconds apart, then an ending.
    """

    pieces: tuple[bytes, ...]
    interval: float = 0.0
    then: str = "close"


@dataclass(frozen=True)
class Endless:
    """
    An answer that never ends: C{start} once, then C{block} forever,
    at most C{rate} bytes a second when set.
    """

    start: bytes
    block: bytes
    rate: float | None = None


@dataclass(frozen=True)
class Drip:
    """
    The well-formed answer, one byte every C{interval} seconds.
    """

    interval: float = 1.0


@dataclass(frozen=True)
class Hang:
    """
    No answer, ever.
    """


def _seconds(text: Any) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise ValueError(text)
    return value


def parse_script(document: Any) -> Script:
    """
    A script from its JSON shape, C{{"pieces": [base64...], "interval":
    S, "then": ENDING}}; C{interval} (0) and C{then} (C{"close"}) may be
    left out.

    @raise BadScenario: for any other shape.
    """
    if not isinstance(document, dict):
        raise BadScenario("a script is a JSON object")
    pieces = document.get("pieces")
    if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
        raise BadScenario("a script's pieces are a list of base64 strings")
    try:
        decoded = tuple(base64.b64decode(p, validate=True) for p in pieces)
        interval = _seconds(document.get("interval", 0.0))
    except (binascii.Error, ValueError, TypeError):
        raise BadScenario("a script's pieces are base64, its interval seconds >= 0") from None
    then = document.get("then", "close")
    if then not in ENDINGS:
        raise BadScenario(f"a script's then is one of {', '.join(ENDINGS)}")
    return Script(decoded, interval, then)


def _block(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_BLOCK:
        raise ValueError(text)
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError(text)
    return value


def _status(text: str) -> int:
    value = int(text)
    if not 100 <= value <= 599:
        raise ValueError(text)
    return value


def _framing(text: str) -> str:
    if text not in ("chunked", "close"):
        raise ValueError(text)
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "block": _block, "rate": _rate, "status": _status, "framing": _framing,
    "interval": _seconds, "delta": _block,
}


def _repeat(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def _framed(status: int, content_type: tuple[bytes, bytes], framing: str,
            start: bytes, filler: bytes) -> tuple[bytes, bytes]:
    if framing == "chunked":
        return (head(status, [content_type, (b"Transfer-Encoding", b"chunked")]) + chunk(start),
                chunk(filler))
    return head(status, [content_type, (b"Connection", b"close")]) + start, filler


def _event_stream(o: dict[str, Any], start: bytes, filler: bytes) -> tuple[bytes, bytes]:
    return _framed(200, EVENT_STREAM, o["framing"], start, filler)


_FIRST_EVENT = sse(chat_chunk({"role": "assistant", "content": ""}))
_HEADER_LINE = b"x-hostile-filler: " + b"x" * 46 + b"\r\n"

#: Scenario name -> (its options, the start and block it sends).
_ENDLESS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], tuple[bytes, bytes]]]] = {
    "endless-json": ((), lambda o: _framed(200, JSON, "close", CHAT_PREFIX, b"x" * o["block"])),
    "endless-chunked": ((), lambda o: _framed(200, JSON, "chunked", CHAT_PREFIX,
                                              b"x" * o["block"])),
    "endless-error": (("status",), lambda o: _framed(o["status"], JSON, "chunked", ERROR_PREFIX,
                                                     b"x" * o["block"])),
    "huge-length": ((), lambda o: (head(200, [JSON, (b"Content-Length", HUGE_LENGTH)])
                                   + CHAT_PREFIX, b"x" * o["block"])),
    "endless-event": (("framing",), lambda o: _event_stream(
        o, _FIRST_EVENT, b"data: " + b"x" * max(1, o["block"] - 7) + b"\n")),
    "endless-line": (("framing",), lambda o: _event_stream(o, b"data: ", b"x" * o["block"])),
    "endless-events": (("framing", "delta"), lambda o: _event_stream(
        o, b"", _repeat(sse(chat_chunk({"content": "x" * o["delta"]})), o["block"]))),
    "endless-head": ((), lambda o: (b"HTTP/1.1 200 OK\r\n", _repeat(_HEADER_LINE, o["block"]))),
    "endless-comments": (("framing",), lambda o: _event_stream(
        o, b"", _repeat(b": x\n", o["block"]))),
}
_DEFAULTS = {"block": DEFAULT_BLOCK, "rate": None, "status": 500, "framing": "chunked",
             "interval": 1.0, "delta": 1}
_OTHERS = {"drip": ("interval",), "hang": ()}

#: Every scenario name, for documentation and error messages.
SCENARIOS = (*_ENDLESS, *_OTHERS)


def parse_scenario(model: Any) -> Endless | Drip | Hang | None:
    """
    The named scenario a request's C{model} asks for, C{hostile+NAME} with
    C{+key=value} options, or L{None} when the model names none (any model
    not starting with C{hostile+}).

    @raise BadScenario: an unknown name, an option the scenario does not
        take, or a bad value: a typo must fail loudly, not test the default.
    """
    if not isinstance(model, str) or not model.startswith("hostile+"):
        return None
    _, name, *options = model.split("+")
    if name in _ENDLESS:
        allowed = ("block", "rate") + _ENDLESS[name][0]
    elif name in _OTHERS:
        allowed = _OTHERS[name]
    else:
        raise BadScenario(f"unknown scenario {name!r} in model {model!r}; "
                          f"the fake knows {', '.join(SCENARIOS)}")
    values = dict(_DEFAULTS)
    for option in options:
        key, _, value = option.partition("=")
        if key not in allowed:
            raise BadScenario(f"scenario {name!r} takes no option {key!r} (model {model!r}); "
                              f"it takes {', '.join(allowed) or 'none'}")
        try:
            values[key] = _PARSERS[key](value)
        except ValueError:
            raise BadScenario(f"bad value {value!r} for {key!r} in model {model!r}") from None
    if name == "drip":
        return Drip(values["interval"])
    if name == "hang":
        return Hang()
    start, block = _ENDLESS[name][1](values)
    return Endless(start, block, values["rate"])
