# -*- test-case-name: tests.unit.test_logging -*-
"""
JSON logs: one object per line, the shape journald, Loki or any log
shipper takes as it is.

Built on C{twisted.logger}: L{JSONObserver} is an ordinary log observer, so
everything Twisted and llmedge log goes through it. The plugin installs it
for C{twistd llmedge} (twistd's C{--logger} still wins), and
L{observer} is the factory to name with C{twistd --logger=...} elsewhere.

Each line has C{ts} (UTC, ISO 8601), C{level}, C{logger} (the namespace),
C{msg} (the event's text), and the event's own fields where they are plain
JSON values: llmedge's events carry structured fields (the access event has
some twenty), so a line can be queried without parsing its text. Objects
are never dumped: an arbitrary object's repr might carry anything.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

_PLAIN = (str, int, float, bool, type(None))
#: The line as UTF-8, by msgspec (a tenth of the standard library's time
#: for the access line); values of no JSON type are written as their
#: C{str}, never dumped (events reach the encoder as L{_plain} values).
_encode_line = msgspec.json.Encoder(enc_hook=str).encode
#: For a line holding a lone surrogate, which UTF-8 cannot carry: escaped.
_encode_ascii = json.JSONEncoder(default=str).encode
#: The fields C{twisted.logger} adds to an event (L{Logger.emit}, the
#: publisher and the legacy bridge), besides llmedge's C{log_plain}.
_TWISTED_FIELDS = ("log_logger", "log_level", "log_namespace", "log_source", "log_format",
                   "log_time", "log_plain", "log_trace", "log_system", "log_failure",
                   "log_io", "log_text", "log_legacy", "log_flattened")
#: Fields of events from Twisted's legacy log API that repeat the message.
_LEGACY = frozenset({"format", "message", "time", "isError", "why", "failure"})

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # NaN is not JSON
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _message(event: dict[str, Any]) -> str:
    """
    The event's text: its C{msg} field when it brings one already written
    (the access event does, sparing a format per request), else its format
    rendered. When the format cannot be rendered, Twisted's fallback text
    holds the repr of the whole event, objects included: say so without it.
    """
    text = event.get("msg")
    if isinstance(text, str) and event.get("log_format") == "{msg}":
        return text
    text = formatEvent(event)
    if text.startswith(("Unable to format event", "MESSAGE LOST")):
        return f"Unable to format event: format {event.get('log_format')!r}"
    return text


_second: int | None = None
_second_text = ""


def _timestamp(when: float) -> str:
    """
    C{when} as ISO 8601 UTC with milliseconds (C{2026-11-27T07:09:10.864Z}),
    the date and time formatted once per second, not once per line.
    """
    global _second, _second_text
    second = int(when)
    # microseconds rounded as datetime rounds them, then cut to milliseconds
    micros = round((when - second) * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    if second != _second:
        _second = second
        _second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second_text}.{micros // 1000:03d}Z"


def to_record(event: dict[str, Any]) -> dict[str, Any]:
    """
    The JSON object for one log event.
    """
    level = event.get("log_level")
    record: dict[str, Any] = {
        "ts": _timestamp(event.get("log_time", 0)),
        "level": level.name if level is not None else "info",
        "logger": event.get("log_namespace", "-"),
        "msg": (message := _message(event)),
    }
    if event.get("log_plain"):
        # The emitter vouches that every field is a JSON value (the access
        # event, once per request): no check per field, and the fields
        # Twisted's logger adds are taken out by name.
        record.update(event)
        record["msg"] = message
        for key in _TWISTED_FIELDS:
            record.pop(key, None)
    else:
        for key, value in event.items():
            if key.startswith("log_") or key in record or key in _LEGACY:
                continue
            if _plain(value):
                record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getErrorMessage()
        record["traceback"] = failure.getTraceback()
    return record


@implementer(ILogObserver)
class JSONObserver:
    """
    Write each event as one line of JSON to C{out}.

    @param fields: added to every line (a worker names itself so).
    """

    def __init__(self, out: IO[str], fields: dict[str, Any] | None = None) -> None:
        self._out = out
        self._fields = fields

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            record = to_record(event)
            if self._fields:
                record.update(self._fields)
            line = _line(record)
        except Exception as e:  # a log line must never take the daemon down
            record = {"level": "error", "msg": f"unloggable event: {e!r}"}
            line = json.dumps(record)
        try:
            self._out.write(line + "\n")
        except UnicodeEncodeError:  # a stream of an encoding narrower than UTF-8
            self._out.write(_encode_ascii(record) + "\n")
        self._out.flush()


def _line(record: dict[str, Any]) -> str:
    """
    The record as one line of JSON text.
    """
    try:
        return _encode_line(record).decode("utf-8")
    except UnicodeEncodeError:
        # Text from clients may hold lone surrogates, which UTF-8 cannot
        # carry: escaped as ASCII, the line stays writable.
        return _encode_ascii(record)


@implementer(ILogObserver)
class _AtLeast:
    """
    An observer passing on the events of C{level} and above.

    What Twisted's C{FilteringLogObserver} with a C{LogLevelFilterPredicate}
    does for one level everywhere, without its search for a level per
    namespace, which costs as much as the access line's own fields and is
    paid on every request.
    """

    def __init__(self, observer: ILogObserver, level: LogLevel) -> None:
        self._observer = observer
        self._levels = frozenset(known for known in LogLevel.iterconstants() if known >= level)

    def __call__(self, event: dict[str, Any]) -> None:
        # Events without a level (from Twisted's legacy log) are passed on,
        # as the predicate does for them (at its default level, info).
        level = event.get("log_level")
        if level in self._levels or (level is None and LogLevel.info in self._levels):
            self._observer(event)


def filtered(observer: ILogObserver, level: str) -> ILogObserver:
    """
    C{observer} behind a filter dropping events below C{level}.
    """
    return _AtLeast(observer, LEVELS[level])


def observer(
    out: IO[str] | None = None, environ: dict[str, str] | None = None
) -> ILogObserver:
    """
    The observer for C{twistd --logger=llmedge.observe.logging.observer}:
    JSON on standard output, filtered by C{LOG_LEVEL}.
    """
    environ = os.environ if environ is None else environ
    level = environ.get("LOG_LEVEL", "info").strip().lower()
    return filtered(JSONObserver(sys.stdout if out is None else out), level if level in LEVELS else "info")


def make_observer(level: str, logfile: str | None, opener: Callable[[str], IO[str]]) -> ILogObserver:
    """
    The observer the plugin installs: JSON to C{logfile} (twistd's
    C{--logfile}, opened with C{opener}) or to standard output when it is
    unset or C{-}.
    """
    out = sys.stdout if logfile in (None, "", "-") else opener(logfile)
    return filtered(JSONObserver(out), level)
