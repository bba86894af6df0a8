# -*- test-case-name: tests.unit.test_jsonwire -*-
"""
How llmedge reads and writes JSON on its hot paths: one module, so every
document comes out alike, whichever layer makes it, and the library that
does the work is chosen in one place.

The work is C{msgspec}'s: on the documents llmedge handles per request (a
chat body in, an answer out, the access line) it takes a seventh of the
standard library's time (bench/README.md, issue 17). Its reading differs
from the standard library's only where a body is unusual: it refuses a
lone surrogate escape, a number out of a double's range and C{NaN}, and
stops at a nesting depth Python's parser would go past. So L{loads} falls
back to the standard library whenever C{msgspec} refuses: a document is
accepted, refused and reported exactly as before, and only a body that
is refused anyway is parsed twice. Its writing differs in two ways that
are fine for a wire format: NaN and infinities are written as C{null}
(the standard library, told not to write them, raised instead), and
integers of any size are written as they are (as the standard library
does).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_refused = (msgspec.DecodeError, RecursionError)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_bytes(document: Any) -> bytes:
    """
    Serialise a document: compact, UTF-8, no NaN.

    @raise UnicodeEncodeError: a string holds a lone surrogate, which no
        UTF-8 text can (as C{str.encode} raises).
    """
    return _encode(document)


def sendable_bytes(document: Any) -> bytes:
    """
    As L{json_bytes}, but a string holding a lone surrogate (which no
    UTF-8 text carries) is written escaped (C{\\ud800}), as the standard
    library's ASCII output writes it, instead of refused: for a body sent
    upstream, which must go whatever the client's text held.
    """
    try:
        return _encode(document)
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":")).encode("ascii")


def loads(raw: bytes, *, constants: bool = False) -> Any:
    """
    Parse C{raw} as the standard library's C{json.loads} does: with
    C{NaN}, C{Infinity} and C{-Infinity} refused (C{ValueError}), for what
    clients send, or with C{constants} read as those floats, as
    C{json.loads} reads them by default (an upstream's events, relayed as
    they came).

    @raise ValueError: not JSON (C{UnicodeDecodeError} when not UTF-8).
    @raise RecursionError: nested deeper than Python's parser goes.
    """
    try:
        return _decode(raw)
    except _refused:
        if constants:
            return json.loads(raw)
        return json.loads(raw, parse_constant=_no_constants)
