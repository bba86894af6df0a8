# -*- test-case-name: tests.unit.test_client -*-
"""
The HTTP/1.1 wire format of L{llmedge.providers.client}: request header
lines out, response heads in.

Kept apart from the connection that uses them so each can be read (and
tested) on its own: these are pure functions of bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from llmedge.providers.client.pairs import HeaderPairs
from llmedge.providers.client.response import Response


_VERSIONS = {b"HTTP/1.1": (b"HTTP", 1, 1), b"HTTP/1.0": (b"HTTP", 1, 0)}
#: Headers about this connection, not the response: kept out of
#: C{response.headers}, as Twisted's client does (but for a HEAD's length).
_CONTROL = frozenset([b"connection", b"content-length", b"keep-alive", b"proxy-connection",
                      b"te", b"trailers", b"transfer-encoding", b"upgrade"])
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: The header lines of a head, each a token, a colon and a value, checked
#: all at once (a line at a time, the names cost more than the rest).
_FIELDS = re.compile(rb"(?:\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\n]*)*\Z")
#: Request header names the client writes itself.
_OWN = frozenset([b"host", b"content-length", b"transfer-encoding", b"connection"])


class MalformedResponse(Exception):
    """
    The upstream's bytes are not an HTTP/1.x response; the message says
    how in words, never quoting the bytes (it may reach a client).
    """


#: A response head (status line and headers) larger than this fails the request.
MAX_HEAD = 64 * 1024


class HeadTooLarge(MalformedResponse):
    """
    The response head runs past L{MAX_HEAD} bytes.
    """

    limit = MAX_HEAD

    def __init__(self) -> None:
        super().__init__(f"a response head over {self.limit} bytes")


_wire_names: dict[bytes, bytes] = {}


def _wire_name(name: bytes) -> bytes:
    if not _TOKEN.match(name) or name.lower() in _OWN:
        raise ValueError(f"not a header name the caller may set: {name!r}")
    wire = b"-".join(word.capitalize() for word in name.split(b"-"))
    if len(_wire_names) < 1024:
        _wire_names[name] = wire
    return wire


def header_block(headers: Mapping[bytes, bytes]) -> bytes:
    """
    The header lines; a CR or LF in a value (a header smuggled in) becomes
    a space, as Twisted's L{Headers} does.
    """
    parts = []
    for name, value in headers.items():
        wire = _wire_names.get(name) or _wire_name(name)
        parts.append(wire + b": " + value + b"\r\n")
    block = b"".join(parts)
    if block.count(b"\n") != len(parts) or block.count(b"\r") != len(parts):
        block = b"".join(
            part[:-2].replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
            for part in parts)
    return block


def blank_line(buffer: bytes) -> tuple[int, int]:
    """
    Where the response head ends and its body starts (-1 when the head is
    not all there); a bare LF is taken for CRLF, as Twisted's parser does.
    """
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 3
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def _refuse(lines: list[bytes]):
    """
    Say what is wrong with the first header line that is not one.
    """
    for line in lines[1:]:
        name, colon, _ = line.partition(b":")
        if not colon:
            raise MalformedResponse("a header line without a colon")
        if not _TOKEN.match(name):
            raise MalformedResponse("a header name that is not a token")
    raise AssertionError("no bad header line")  # pragma: no cover


def parse_head(head: bytes, method: bytes):
    """
    The response a head describes and how its body is framed:
    C{(response, length, chunked, persistent)}, C{length} L{None} for a
    body delimited by the connection's close; C{response} is L{None} for an
    informational (1xx) head, which is skipped.

    @raise MalformedResponse: not an HTTP/1.x response head.
    """
    if b"\n " in head or b"\n\t" in head:  # obsolete line folding
        head = re.sub(rb"\r?\n[ \t]+", b" ", head)
    lines = head.split(b"\n")
    status = lines[0].rstrip(b"\r")
    parts = status.split(b" ", 2)
    version = _VERSIONS.get(parts[0])
    if version is None or len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
        raise MalformedResponse("a status line that is not HTTP/1.x")
    code = int(parts[1])
    if code > 599:
        raise MalformedResponse("a status code that is not one")
    if code < 200:
        return None, 0, False, True
    if not _FIELDS.match(head, len(lines[0])):
        _refuse(lines)
    pairs = []
    control: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lower = name.lower()
        if lower in _CONTROL:
            control.setdefault(lower, []).append(value.strip(b" \t\r"))
        else:
            pairs.append((lower, value.strip(b" \t\r")))
    response = Response(version, code, parts[2] if len(parts) == 3 else b"", HeaderPairs(pairs))
    persistent = version[2] == 1
    if b"connection" in control:
        for value in control[b"connection"]:
            if b"close" in [token.strip().lower() for token in value.split(b",")]:
                persistent = False
    lengths = control.get(b"content-length")
    if method == b"HEAD" or code == 204 or code == 304:
        if lengths and method == b"HEAD":
            pairs.extend((b"content-length", value) for value in lengths)
        response.length = 0
        return response, 0, False, persistent
    codings = control.get(b"transfer-encoding")
    if codings is not None:
        last = b",".join(codings).rsplit(b",", 1)[-1].strip().lower()
        if last == b"chunked":
            return response, None, True, persistent and lengths is None
        return response, None, False, False
    if lengths is None:
        return response, None, False, False
    value = lengths[0]
    if len(lengths) > 1 or not value.isdigit():  # "7, 7" is 7; "7, 8" is no length
        values = {v.strip() for value in lengths for v in value.split(b",")}
        if len(values) != 1:
            raise MalformedResponse("conflicting Content-Length values")
        (value,) = values
    if not value.isdigit() or len(value) > 18:
        raise MalformedResponse("a Content-Length that is not a length")
    response.length = length = int(value)
    return response, length, False, persistent
